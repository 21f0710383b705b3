"""Real-time, text-instructed talking-avatar server."""
__version__ = "0.1.0"
