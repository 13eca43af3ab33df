"""Change tracking: the Kubernetes watch that records rollouts and traffic shifts as change events."""
