"""Sans-IO codecs, one module per wire protocol: bytes in, events out, no I/O."""
