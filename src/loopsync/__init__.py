"""loopsync: hold Loop exchange orders that swap into pre-order variants."""

__version__ = "0.1.0"
