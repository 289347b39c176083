"""How a products.csv is written: its encoding and separator, detected from its first bytes.

Spreadsheets export CSV in several ways: Excel's "CSV UTF-8" (UTF-8 with a BOM), "Unicode text"
(UTF-16 with a BOM, tab-separated), plain "CSV" on Windows (Windows-1252, no BOM), and in many
European locales semicolons instead of commas. The header's columns are known, so the separator is
the one that finds them all.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..errors import ConfigError

REQUIRED_COLUMNS = ("id", "name", "category", "price", "image_url")
DELIMITERS = (",", ";", "\t")
SNIFF_BYTES = 64 * 1024  # the header line is found within this much of the file
RESAVE_AS_UTF8 = (
    "re-save it as UTF-8: in Excel, Save As > 'CSV UTF-8 (Comma delimited)'; in LibreOffice, "
    "Save As > Text CSV with 'Edit filter settings' and the character set 'Unicode (UTF-8)'"
)


@dataclass(frozen=True)
class CsvFormat:
    """A products.csv's encoding, separator and line ending, kept when the file is rewritten."""

    # "utf-8", "utf-8-sig" (with a BOM), "utf-16" (with a BOM) or "cp1252" (Windows-1252)
    encoding: str = "utf-8"
    delimiter: str = ","
    # Excel's optional first line "sep=;" that names the separator; kept on rewrite.
    separator_line: bool = False

    def open(self, path: Path) -> TextIO:
        """Open for csv.reader; undecodable bytes stay visible so only their row is refused."""
        return path.open(encoding=self.encoding, errors="surrogateescape", newline="")

    @property
    def description(self) -> str:
        separators = {",": "commas", ";": "semicolons", "\t": "tabs"}
        return f"{ENCODING_NAMES[self.encoding]}, separated by {separators[self.delimiter]}"

    @property
    def note(self) -> str | None:
        """What an owner should know of how the file was read, or None when it is as expected."""
        if self.encoding == "cp1252":
            return f"read as {ENCODING_NAMES['cp1252']}"
        return None


ENCODING_NAMES = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8 with BOM",
    "utf-16": "UTF-16",
    "cp1252": "Windows-1252 (not UTF-8)",
}


def detect_format(path: Path) -> CsvFormat:
    """Work out a catalog file's encoding (from its BOM) and separator (from its header)."""
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    encoding = _encoding(head, path)
    text = head.decode(encoding, errors="replace")
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return CsvFormat(encoding)
    first = lines[0].strip()
    if first.lower().startswith("sep=") and len(first) == 5 and first[4] in DELIMITERS:
        return CsvFormat(encoding, first[4], separator_line=True)
    return CsvFormat(encoding, _delimiter(first))


def _encoding(head: bytes, path: Path) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    # ASCII text in UTF-16 has a zero byte in every other position.
    if head[:200].count(0) >= len(head[:200]) // 4 > 0:
        raise ConfigError(
            f"{path.name} looks like UTF-16 without a byte-order mark, which cannot be read "
            f"reliably; {RESAVE_AS_UTF8}"
        )
    return "cp1252" if reads_as_cp1252(path) else "utf-8"


def reads_as_cp1252(path: Path) -> bool:
    """Whether a file without a BOM is Windows-1252: not valid UTF-8, yet every byte is one of
    its characters, and no valid UTF-8 sequence beyond ASCII anywhere.

    The last condition keeps a UTF-8 file with a few stray bytes as UTF-8 (its bad rows are
    skipped with the advice), where reading it as Windows-1252 would garble every accent.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
    undecodable = False
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            if any(byte in chunk for byte in _UNUSED_IN_CP1252):
                return False
            text = decoder.decode(chunk)
            if _UTF8_BEYOND_ASCII.search(text):
                return False
            undecodable = undecodable or bool(_ESCAPED_BYTE.search(text))
    return undecodable or bool(_ESCAPED_BYTE.search(decoder.decode(b"", final=True)))


def _delimiter(first_line: str) -> str:
    """The separator whose split of the header finds the most of the required columns."""

    def found(delimiter: str) -> int:
        try:
            cells = next(csv.reader(io.StringIO(first_line), delimiter=delimiter), [])
        except csv.Error:
            return 0
        names = {cell.strip().lower() for cell in cells}
        return sum(name in names for name in REQUIRED_COLUMNS)

    return max(DELIMITERS, key=found)  # a tie (no column found) keeps the comma


def encoding_advice(path: Path, csv_format: CsvFormat) -> str:
    """Why a row could not be decoded, naming the file's likely encoding and the fix."""
    if csv_format.encoding == "utf-16":
        return f"is not valid UTF-16 text; {RESAVE_AS_UTF8}"
    return f"is not valid UTF-8 text: the file looks like {guess_encoding(path)}; {RESAVE_AS_UTF8}"


def guess_encoding(path: Path) -> str:
    """Name the 8-bit encoding a file that is not UTF-8 most likely uses."""
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            if any(byte in chunk for byte in _UNUSED_IN_CP1252):
                return "an 8-bit encoding other than Windows-1252 (e.g. Windows-1250 or ISO-8859-2)"
    return "Windows-1252 (Western European, what Excel's plain 'CSV' writes on Windows)"


_UNUSED_IN_CP1252 = (b"\x81", b"\x8d", b"\x8f", b"\x90", b"\x9d")
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")  # a byte surrogateescape could not decode
_UTF8_BEYOND_ASCII = re.compile("[\u0080-\ud7ff\ue000-\U0010ffff]")
