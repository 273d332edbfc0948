"""Transport: the shared contracts of sending, below every stage that sends.

Takes nothing but the standard library and aiohttp; gives `records` (RequestParams, Answer,
HttpRequest, and the classified failure: FailureKind and ProviderError), `failures` (the one
place an HTTP status or a network error becomes permanent, transient or rate-limited),
`retry` (the one retry loop, its policy as data) and `session` (an aiohttp session that never
re-sends by itself). Providers, the batch APIs and the data fetcher all send through these.
"""
