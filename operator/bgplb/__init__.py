"""bgplb: a BGP load balancer operator for bare-metal Kubernetes."""

__version__ = "0.1.0"
