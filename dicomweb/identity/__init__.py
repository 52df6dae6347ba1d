"""Who is asking: bearer tokens (the archive's API tokens and share links, OpenID Connect JWTs)
and anonymous access, turned into the principal every transaction acts as."""
