"""The policy layer: what people may do to alerts and production, and the one place it is decided.

Slack, the HTTP API and the CLI are thin adapters over these services: silences (one validation,
one set of limits), incident actions (ack / resolve), runbook approvals (who, how many, how long,
what exactly), runbook runs an operator asks for by hand, and the roles behind them. Adapters
never decide who may do what themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from alertbot.services.approvals import ApprovalService
from alertbot.services.incidents import IncidentService
from alertbot.services.oncall import OncallService
from alertbot.services.roles import Roles
from alertbot.services.runs import RunService
from alertbot.services.silences import SilenceService


@dataclass(frozen=True)
class Services:
    """The policy layer as one process uses it (built by ``bootstrap.make_services``)."""

    roles: Roles
    silences: SilenceService
    incidents: IncidentService
    approvals: ApprovalService
    runs: RunService
    oncall: OncallService
