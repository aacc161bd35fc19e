"""The emulated Kubernetes API server, re-exported for tests (it lives in `emulators/`)."""

from emulators.kube_apiserver import Cluster, KubeApiServer, ObjectStore

__all__ = ["Cluster", "KubeApiServer", "ObjectStore"]
