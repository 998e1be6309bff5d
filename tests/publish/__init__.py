"""Putting feeds and archives where readers get them: building, storage, WebSub."""
