"""The only code that touches sockets, serial ports, brokers and threads."""
