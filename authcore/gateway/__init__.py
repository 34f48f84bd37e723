"""The demo OpenAI-compatible gateway: authcore in front of a mock or a real upstream."""

from authcore.gateway.app import create_app, create_app_from_env

__all__ = ["create_app", "create_app_from_env"]
