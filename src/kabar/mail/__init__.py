"""Mail bytes: per-subscriber personalisation, the MIME skeleton, and DKIM signing.

An issue is rendered once; each subscriber's message is that render with a few values
joined in (`slots`), wrapped in headers and parts encoded once per issue (`message`),
and signed with a precomputed canonical form of everything that does not change (`dkim`).
"""
