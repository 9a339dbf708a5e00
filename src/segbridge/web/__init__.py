"""DICOMweb: a client with real-world error handling, pull / push, remote reference series."""
