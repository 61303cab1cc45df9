"""Power-limit policies: pure cost rules, the :class:`Policy` interface, the built-in policies, a registry.

* :mod:`~chase_integrations.core.policies.rules`: the cost of one step under each rule (pure functions).
* :mod:`~chase_integrations.core.policies.base`: :class:`Policy`, :class:`PolicyBase`, the registry.
* :mod:`~chase_integrations.core.policies.standard`: ``budget``, ``chase``, ``static``, ``monitor``.
"""

from chase_integrations.core.policies.base import Policy, PolicyBase, make_policy, policy_names, register_policy
from chase_integrations.core.policies.rules import chase_cost, chase_limit, weighted_cost, weighted_limit
from chase_integrations.core.policies.standard import BudgetPolicy, ChasePolicy, MonitorPolicy, StaticPolicy

__all__ = [
    "BudgetPolicy",
    "ChasePolicy",
    "MonitorPolicy",
    "Policy",
    "PolicyBase",
    "StaticPolicy",
    "chase_cost",
    "chase_limit",
    "make_policy",
    "policy_names",
    "register_policy",
    "weighted_cost",
    "weighted_limit",
]
