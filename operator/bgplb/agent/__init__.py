"""The node agent: drives the local GoBGP speaker, plumbs floating IPs, reports status."""
