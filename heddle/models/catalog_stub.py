"""Former placeholder model lookup; kept so existing imports work. Use heddle.models.catalog."""

from heddle.models.catalog import model as model_spec

__all__ = ["model_spec"]
