"""Putting feeds and archives where readers get them: feed storage (a folder or any
fsspec URL), the feed build, the archive of sent issues, and WebSub pings."""
