"""Message bytes: headers, quoted-printable, DKIM (kabar.mail)."""
