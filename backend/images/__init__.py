"""Product and query images: the one outbound HTTP client, decoding with limits, the locator."""
