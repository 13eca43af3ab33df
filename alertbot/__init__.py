"""alertbot: alert routing and incident automation for Kubernetes + Istio shops."""

__version__ = "0.1.0"
