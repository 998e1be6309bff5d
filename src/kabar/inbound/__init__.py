"""What comes back: bounces, complaints, mailto unsubscribes and auto-replies.

parse reads a returned message into findings; policy records each and decides what it
changes; process runs batches of them in one transaction each; mailbox reads a Maildir,
an IMAP mailbox or files; kabar.web.inbound takes the relays' webhooks.
"""
