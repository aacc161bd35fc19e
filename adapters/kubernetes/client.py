"""The one place a Kubernetes API client is built: from a kubeconfig or in-cluster.

Options (under the source's `options:` in `switchyard.yaml`):
`kubeconfig` (path; default `$KUBECONFIG` or `~/.kube/config`), `context`
(a kubeconfig context), `in_cluster: true` (the pod's service account). With
neither a kubeconfig nor `in_cluster`, a process running in a pod
(`KUBERNETES_SERVICE_HOST` set) uses in-cluster config. A config that cannot be
loaded is a non-retryable `SourceError` naming the option.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from gateway.contract import SourceError


def build_api_client(source: str, options: dict[str, Any]) -> client.ApiClient:
    kubeconfig = options.get("kubeconfig")
    context = options.get("context")
    in_cluster = options.get("in_cluster")
    if kubeconfig is not None and not isinstance(kubeconfig, str):
        raise SourceError(source, "options.kubeconfig must be a path", retryable=False)
    default_file = Path(os.environ.get("KUBECONFIG", "~/.kube/config")).expanduser()
    if in_cluster is None:
        in_cluster = (
            kubeconfig is None
            and "KUBERNETES_SERVICE_HOST" in os.environ
            and not default_file.exists()
        )
    try:
        if in_cluster:
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(configuration)
        path = str(Path(kubeconfig).expanduser()) if kubeconfig else str(default_file)
        return config.new_client_from_config(config_file=path, context=context)
    except (ConfigException, OSError, ValueError, TypeError) as exc:
        what = (
            "in-cluster config"
            if in_cluster
            else f"options.kubeconfig ({kubeconfig or default_file})"
        )
        raise SourceError(source, f"cannot load {what}: {exc}", retryable=False) from exc
