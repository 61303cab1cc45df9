"""Simulation: a Zeus ``GPUs`` driven by measured profiles, a simulated clock, and offline ``simulate()``.

Example:
    >>> from chase_integrations.simulation import SimulatedClock
    >>> SimulatedClock("2024-01-01T00:00:00Z").now().year
    2024
"""

from chase_integrations.simulation.clock import SimulatedClock
from chase_integrations.simulation.gpu import SimulatedGPU, SimulatedGPUs
from chase_integrations.simulation.gpu_profile import EpochProfile, load_gpu_profile

# ``simulate`` is bound eagerly: a lazy ``__getattr__`` loses to the submodule of the same name once anything imports
# ``chase_integrations.simulation.simulate`` (the import system then binds the module here instead).
from chase_integrations.simulation.simulate import simulate
from chase_integrations.simulation.simulation import Simulation

__all__ = [
    "EpochProfile",
    "SimulatedClock",
    "SimulatedGPU",
    "SimulatedGPUs",
    "Simulation",
    "load_gpu_profile",
    "simulate",
]

