"""The forecaster interface (declared in :mod:`chase_integrations.core.interfaces`, re-exported here)."""

from chase_integrations.core.interfaces import Forecaster

__all__ = ["Forecaster"]
