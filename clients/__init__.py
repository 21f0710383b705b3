"""Clients of the avatar server: the Python client (`avatar_client`) and the chat bridge (`chat_bridge`)."""
