"""Suite-wide pytest configuration. Keep it minimal: no autouse fixtures, no heavy imports."""

from fixtures import *
