"""Airflow DAG `JobSpec` → one Kestra flow with a `Dag` task.

Each Airflow task becomes one entry of the `Dag` task with `dependsOn` equal
to its upstream tasks; the operator is translated by its rule in
`mappings/kestra/*.yaml` or becomes a marked placeholder. Retries, timeouts,
SLAs, the schedule, catch-up and `max_active_runs` are carried where Kestra
has the counterpart; everything else is named in the reasons or notes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from gateway.contract import JobSpec, TaskSpec
from migration_tools.translate.flow import (
    FlowDraft,
    flow_id_for,
    iso_duration,
    seconds_of,
    task_id_for,
)
from migration_tools.translate.model import TranslationError
from migration_tools.translate.pebble import Pebble, expression, join, literal_tree
from migration_tools.translate.python_source import CallableNotFound, extract_callable
from migration_tools.translate.rules import OperatorRule, Rules

DAG_TYPE = "io.kestra.plugin.core.flow.Dag"
FOREACH_TYPE = "io.kestra.plugin.core.flow.ForEach"  # Kestra 1.x
LOOP_TYPE = "io.kestra.plugin.core.flow.Loop"  # Kestra 2.0 (ForEach removed)
AIRFLOW_DEFAULT_RETRY_DELAY_S = 300.0
AIRFLOW_DEFAULT_MAX_RETRY_DELAY_S = 86400.0
_TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}")

Built = tuple[dict[str, Any], set[str]]


class _TaskContext:
    """One Airflow task on its way to a Kestra task."""

    def __init__(self, spec: JobSpec, task: TaskSpec, task_id: str, draft: FlowDraft, rules: Rules):
        self.spec = spec
        self.task = task
        self.task_id = task_id
        self.draft = draft
        self.rules = rules
        self.op = task.type.rsplit(".", 1)[-1]
        # The arguments as the DAG file wrote them, for builders that parse one
        # (a JSON payload) before its templates are translated.
        self.written: dict[str, Any] = {}

    def reason(self, text: str) -> None:
        self.draft.reason(f"task {self.task_id} ({self.op}): {text}")

    def note(self, text: str) -> None:
        self.draft.note(f"task {self.task_id} ({self.op}): {text}")


def _rewrite_templates(value: Any, ctx: _TaskContext) -> Any:
    """Airflow Jinja macros → Pebble by the `macros` rules; unknown ones are reported.

    A string with templates comes back as one `Pebble` string: each macro the
    rules know becomes their expression, everything else (unknown templates
    included) literal text. A string without templates is returned as it is,
    to be made literal with the rest of the flow.
    """
    if isinstance(value, Pebble):
        return value
    if isinstance(value, str):
        parts: list[str] = []
        end = 0
        for m in _TEMPLATE.finditer(value):
            expr = ctx.rules.macros.get(m.group(1))
            if expr is None:
                ctx.reason(f"Airflow template {m.group(0)!r} has no Pebble rule; kept as written")
                continue
            parts += [value[end : m.start()], expression(expr)]
            end = m.end()
        if not parts:
            return value
        return join(*parts, value[end:])
    if isinstance(value, list):
        return [_rewrite_templates(v, ctx) for v in value]
    if isinstance(value, dict):
        return {k: _rewrite_templates(v, ctx) for k, v in value.items()}
    return value


def _build_arguments(ctx: _TaskContext, rule: OperatorRule, args: dict[str, Any]) -> Built:
    props: dict[str, Any] = {}
    consumed: set[str] = set()
    for prop, prule in rule.properties.items():
        if prule.arg in args and args[prule.arg] is not None:
            value = args[prule.arg]
            props[prop] = [value] if prule.wrap_list and not isinstance(value, list) else value
            consumed.add(prule.arg)
    return props, consumed


def _build_python(ctx: _TaskContext, rule: OperatorRule, args: dict[str, Any]) -> Built:
    name = str(args["python_callable"]).rsplit(".", 1)[-1]
    if not ctx.spec.source_text:
        raise _Unmappable("the DAG file text is not available to extract python_callable")
    try:
        extracted = extract_callable(ctx.spec.source_text, name, filename=f"{ctx.spec.key}.py")
    except CallableNotFound as exc:
        raise _Unmappable(f"{exc} (a lambda or an imported callable cannot be lifted)") from exc
    except SyntaxError as exc:
        raise _Unmappable(f"the DAG file does not parse: {exc.msg} (line {exc.lineno})") from exc
    op_args = args.get("op_args") or []
    op_kwargs = args.get("op_kwargs") or {}
    # Each argument is the repr of its literal form: text stays text inside
    # the Python string, a translated macro stays a live expression.
    call_args = [_python_repr(a) for a in op_args] + [
        join(f"{k}=", _python_repr(v)) for k, v in sorted(op_kwargs.items())
    ]
    between = [", "] * len(call_args)
    arguments = [p for pair in zip(call_args, between, strict=True) for p in pair][:-1]
    script = join(
        f"# Lifted by Switchyard from {ctx.spec.key} (def {name}, line {extracted.lineno})\n"
        + extracted.script
        + f"\n\n{name}(",
        *arguments,
        ")\n",
    )
    if extracted.uses_airflow_context:
        ctx.reason(f"{name} takes the Airflow task context, which Kestra does not pass")
    if extracted.unresolved:
        ctx.reason(
            f"{name} uses names the DAG file does not define: {', '.join(extracted.unresolved)}"
        )
    if extracted.airflow_imports:
        ctx.reason(f"{name} uses Airflow objects: {', '.join(extracted.airflow_imports)}")
    if extracted.third_party_modules:
        ctx.note(
            "script imports "
            + ", ".join(extracted.third_party_modules)
            + "; install them in containerImage or beforeCommands"
        )
    return {"script": script}, {"python_callable", "op_args", "op_kwargs"}


def _python_repr(value: Any) -> Pebble:
    return expression(repr(literal_tree(value)))


def _env_list(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [{"name": str(k), "value": str(v)} for k, v in sorted(value.items())]
    if isinstance(value, list):
        return [dict(v) for v in value if isinstance(v, dict)]
    return []


def _build_pod(ctx: _TaskContext, rule: OperatorRule, args: dict[str, Any]) -> Built:
    container: dict[str, Any] = {"name": "base", "image": args["image"]}
    if args.get("cmds"):
        container["command"] = list(args["cmds"])
    if args.get("arguments"):
        container["args"] = list(args["arguments"])
    if args.get("env_vars"):
        container["env"] = _env_list(args["env_vars"])
    if args.get("image_pull_policy"):
        container["imagePullPolicy"] = args["image_pull_policy"]
    resources = args.get("container_resources") or args.get("resources")
    if isinstance(resources, dict):
        container["resources"] = resources
    pod_spec: dict[str, Any] = {"containers": [container]}
    if args.get("service_account_name"):
        pod_spec["serviceAccountName"] = args["service_account_name"]
    if args.get("node_selector"):
        pod_spec["nodeSelector"] = args["node_selector"]
    # PodCreate runs one bare pod; retries belong to Kestra's retry, not kubelet.
    pod_spec["restartPolicy"] = "Never"
    props: dict[str, Any] = {"namespace": args.get("namespace") or "default"}
    metadata: dict[str, Any] = {}
    if args.get("labels"):
        metadata["labels"] = args["labels"]
    if args.get("annotations"):
        metadata["annotations"] = args["annotations"]
    if metadata:
        props["metadata"] = metadata
    props["spec"] = pod_spec
    if args.get("name"):
        ctx.note(f"pod name {args['name']!r} not carried: PodCreate names each pod itself")
    if args.get("secrets"):
        ctx.reason("Airflow `secrets` (K8s Secret mounts) need a volume or env mapping by hand")
    consumed = {
        "image",
        "cmds",
        "arguments",
        "env_vars",
        "image_pull_policy",
        "container_resources",
        "resources",
        "service_account_name",
        "node_selector",
        "namespace",
        "labels",
        "annotations",
        "name",
        "secrets",
    }
    return props, consumed


def _build_lambda(ctx: _TaskContext, rule: OperatorRule, args: dict[str, Any]) -> Built:
    arn = args["function_name"]
    if args.get("qualifier"):
        arn = join(arn, ":", args["qualifier"])
    props: dict[str, Any] = {"functionArn": arn}
    payload = args.get("payload")
    written = ctx.written.get("payload")
    if isinstance(written, str) and written.strip():
        # Parsed as the DAG wrote it, then its templates translated value by value.
        try:
            payload = _rewrite_templates(json.loads(written), ctx)
        except ValueError:
            ctx.reason("payload is not JSON; functionPayload needs a map")
            payload = None
    if isinstance(payload, dict):
        props["functionPayload"] = payload
    elif payload not in (None, ""):
        ctx.reason("payload is not a JSON object; functionPayload needs a map")
    if args.get("region_name"):
        props["region"] = args["region_name"]
    if args.get("invocation_type") == "Event":
        ctx.note("Airflow invoked asynchronously (Event); Kestra's Invoke waits for the result")
    return props, {"function_name", "qualifier", "payload", "region_name", "invocation_type"}


def _build_subflow(ctx: _TaskContext, rule: OperatorRule, args: dict[str, Any]) -> Built:
    target = str(args["trigger_dag_id"])
    wait = bool(args.get("wait_for_completion", False))
    props: dict[str, Any] = {
        "namespace": ctx.draft.namespace,
        "flowId": flow_id_for(target),
        "wait": wait,
        "transmitFailed": wait,
    }
    if args.get("conf"):
        props["inputs"] = args["conf"]
        ctx.reason(
            f"conf is passed as Subflow inputs; flow {flow_id_for(target)} must declare them"
        )
    if args.get("logical_date") or args.get("execution_date"):
        ctx.reason("logical_date of the triggered run has no Subflow counterpart")
    ctx.note(f"expects DAG {target!r} migrated as flow {ctx.draft.namespace}.{flow_id_for(target)}")
    return props, {
        "trigger_dag_id",
        "wait_for_completion",
        "conf",
        "logical_date",
        "execution_date",
    }


def _build_http(ctx: _TaskContext, rule: OperatorRule, args: dict[str, Any]) -> Built:
    written = str(ctx.written.get("endpoint", args["endpoint"]))
    conn = str(args.get("http_conn_id") or "http_default")
    uri: str
    if written.startswith(("http://", "https://")):
        uri = args["endpoint"]
    else:
        path = _rewrite_templates(written.lstrip("/"), ctx)
        if conn in ctx.rules.http_connections:
            base = expression(ctx.rules.http_connections[conn].rstrip("/") + "/")
        else:
            base = expression("{{ kv('airflow_conn_" + task_id_for(conn) + "') }}/")
            ctx.reason(
                f"http_conn_id {conn!r} has no base URL in http_connections; "
                f"set KV airflow_conn_{task_id_for(conn)} or add the rule"
            )
        uri = join(base, path)
    props: dict[str, Any] = {"uri": uri, "method": str(args.get("method") or "POST").upper()}
    data = args.get("data")
    if isinstance(data, dict | list):
        # JSON of literal text and live macros: escaping happens inside the raw blocks.
        props["body"] = expression(json.dumps(literal_tree(data), sort_keys=True))
        props["contentType"] = "application/json"
    elif data not in (None, ""):
        props["body"] = str(data)
    if args.get("headers"):
        props["headers"] = args["headers"]
    return props, {"endpoint", "http_conn_id", "method", "data", "headers"}


class _Unmappable(Exception):
    """This task cannot be translated by its rule; it becomes a placeholder."""


BUILDERS: dict[str, Callable[[_TaskContext, OperatorRule, dict[str, Any]], Built]] = {
    "arguments": _build_arguments,
    "python_callable": _build_python,
    "pod_create": _build_pod,
    "lambda_invoke": _build_lambda,
    "subflow": _build_subflow,
    "http_request": _build_http,
}


def _retry(task: TaskSpec, args: dict[str, Any]) -> dict[str, Any] | None:
    retries = task.retries if task.retries is not None else args.get("retries")
    if not isinstance(retries, int) or retries <= 0:
        return None
    delay = seconds_of(args.get("retry_delay"))
    interval = iso_duration(delay if delay is not None else AIRFLOW_DEFAULT_RETRY_DELAY_S)
    if args.get("retry_exponential_backoff"):
        cap = seconds_of(args.get("max_retry_delay")) or AIRFLOW_DEFAULT_MAX_RETRY_DELAY_S
        return {
            "type": "exponential",
            "interval": interval,
            "maxInterval": iso_duration(cap),
            "maxAttempts": retries + 1,
        }
    return {"type": "constant", "interval": interval, "maxAttempts": retries + 1}


def _kestra_task(ctx: _TaskContext, args: dict[str, Any]) -> dict[str, Any]:
    rule = ctx.rules.operator(ctx.task.type)
    original = ctx.task.model_dump(mode="json")
    if rule is None:
        return ctx.draft.placeholder(
            ctx.task_id, ctx.op, f"no rule for operator {ctx.op}", original
        )
    missing = [a for a in rule.required if args.get(a) in (None, "")]
    if missing:
        return ctx.draft.placeholder(
            ctx.task_id, ctx.op, f"required argument(s) missing: {', '.join(missing)}", original
        )
    try:
        props, consumed = BUILDERS[rule.builder](ctx, rule, args)
    except _Unmappable as exc:
        return ctx.draft.placeholder(ctx.task_id, ctx.op, str(exc), original)
    leftover = set(args) - consumed - rule.ignore - ctx.rules.base_handled
    not_carried = sorted(leftover & ctx.rules.base_not_carried)
    if not_carried:
        ctx.note(f"not carried (no per-task Kestra counterpart): {', '.join(not_carried)}")
    for arg in sorted(leftover - ctx.rules.base_not_carried):
        ctx.reason(f"argument {arg!r} is not translated by the {rule.name} rule")
    task: dict[str, Any] = {"id": ctx.task_id, "type": rule.type}
    description = args.get("doc_md") or args.get("doc")
    if ctx.task_id != ctx.task.id:
        description = f"Airflow task {ctx.task.id}" + (f"\n{description}" if description else "")
    if description:
        task["description"] = str(description)
    task.update(props)
    for key, value in rule.set.items():
        task.setdefault(key, value)
    retry = _retry(ctx.task, args)
    if retry:
        task["retry"] = retry
    timeout = ctx.task.timeout_s
    if timeout is None:
        timeout = seconds_of(args.get("execution_timeout"))
    if timeout:
        task["timeout"] = iso_duration(timeout)
    ctx.draft.translated_work += 1
    return task


def _mapped(ctx: _TaskContext, args: dict[str, Any]) -> dict[str, Any]:
    """`.expand(arg=[…])` → ForEach (1.x) or Loop (2.0) around the task."""
    expand = args.pop("expand")
    if not isinstance(expand, dict) or len(expand) != 1:
        return ctx.draft.placeholder(
            ctx.task_id,
            ctx.op,
            "expand over several arguments (a cross product)",
            ctx.task.model_dump(mode="json"),
        )
    ((arg, values),) = expand.items()
    if not isinstance(values, list):
        return ctx.draft.placeholder(
            ctx.task_id,
            ctx.op,
            f"expand over {arg} is not a literal list (XComArg?)",
            ctx.task.model_dump(mode="json"),
        )
    v2 = ctx.draft.kestra_version == "2"
    args[arg] = expression("{{ item.value }}" if v2 else "{{ taskrun.value }}")
    outer_id = ctx.task_id
    ctx.task_id = task_id_for(f"{outer_id}_item")
    inner = _kestra_task(ctx, args)
    ctx.task_id = outer_id
    # Airflow runs mapped instances in parallel; 0 = no limit in both engines.
    return {
        "id": outer_id,
        "type": LOOP_TYPE if v2 else FOREACH_TYPE,
        "values": values,
        "concurrencyLimit": 0,
        "tasks": [inner],
    }


def _task_ids(spec: JobSpec, draft: FlowDraft) -> dict[str, str]:
    ids: dict[str, str] = {}
    taken: set[str] = {"dag"}
    for task in spec.tasks:
        if task.id in ids:
            raise TranslationError(spec.key, f"tasks.{task.id}", "task id appears twice")
        base = task_id_for(task.id)
        candidate, n = base, 2
        while candidate in taken:
            candidate, n = f"{base}_{n}", n + 1
        taken.add(candidate)
        ids[task.id] = candidate
        if candidate != task.id:
            draft.note(f"Airflow task {task.id!r} is Kestra task {candidate!r}")
    return ids


def _upstreams(spec: JobSpec) -> dict[str, list[str]]:
    known = {t.id for t in spec.tasks}
    ups: dict[str, list[str]] = {t.id: list(t.upstream) for t in spec.tasks}
    for i, (a, b) in enumerate(spec.edges):
        for end in (a, b):
            if end not in known:
                raise TranslationError(spec.key, f"edges[{i}]", f"unknown task {end!r}")
        if a not in ups[b]:
            ups[b].append(a)
    for task in spec.tasks:
        for up in ups[task.id]:
            if up not in known:
                raise TranslationError(
                    spec.key, f"tasks.{task.id}.upstream", f"unknown task {up!r}"
                )
    return ups


# What the Airflow adapter reads from the API rather than the DAG file; it
# stores these as `_<field>` beside the file's own arguments.
_API_DEFAULTS = {"trigger_rule": "all_success", "pool": "default_pool", "queue": "default"}


def _with_api_facts(ctx: _TaskContext, raw: dict[str, Any]) -> dict[str, Any]:
    """The task's arguments with the API's `_<field>` facts folded in, never as arguments.

    The file's own argument wins; an API value that differs from Airflow's
    default stands in for a missing one (so a trigger rule set through
    default_args still counts); a mapped task whose `expand` is not in the
    file cannot be translated as a single task.
    """
    api = {k[1:]: raw.pop(k) for k in [k for k in raw if k.startswith("_")]}
    for name, default in _API_DEFAULTS.items():
        if name not in raw and api.get(name) not in (None, default):
            raw[name] = api[name]
    if api.get("is_mapped") and "expand" not in raw:
        ctx.reason("the API says the task is mapped, but its expand() is not in the DAG file")
    return raw


def translate_dag(spec: JobSpec, draft: FlowDraft, rules: Rules) -> None:
    draft.description = f"Airflow DAG {spec.name or spec.key}"
    ids = _task_ids(spec, draft)
    ups = _upstreams(spec)
    entries: list[dict[str, Any]] = []
    for task in spec.tasks:
        ctx = _TaskContext(spec, task, ids[task.id], draft, rules)
        raw = _with_api_facts(ctx, dict(task.arguments))
        ctx.written = dict(raw)
        args = {
            k: (v if k == "python_callable" else _rewrite_templates(v, ctx)) for k, v in raw.items()
        }
        trigger_rule = args.get("trigger_rule")
        if trigger_rule not in (None, "all_success"):
            ctx.reason(f"trigger_rule {trigger_rule!r} has no Dag dependsOn counterpart")
        kestra_task = _mapped(ctx, args) if "expand" in args else _kestra_task(ctx, args)
        sla_s = seconds_of(args.get("sla"))
        if sla_s:
            draft.sla.append(
                {
                    "id": task_id_for(f"sla_{ids[task.id]}"),
                    "type": "MAX_DURATION",
                    "duration": iso_duration(sla_s),
                    "behavior": "NONE",
                    "labels": {"switchyard.sla_missed": ids[task.id]},
                }
            )
            draft.note(
                f"task {ids[task.id]} SLA became a flow SLA (MAX_DURATION from the "
                "execution start; Kestra does not enforce it promptly, kestra#15547)"
            )
        entry: dict[str, Any] = {"task": kestra_task}
        if ups[task.id]:
            entry["dependsOn"] = [ids[u] for u in ups[task.id]]
        entries.append(entry)
    if entries:
        draft.tasks.append({"id": "dag", "type": DAG_TYPE, "tasks": entries})
    if spec.max_duration_s:
        draft.sla.insert(
            0,
            {
                "id": "dagrun_timeout",
                "type": "MAX_DURATION",
                "duration": iso_duration(spec.max_duration_s),
                "behavior": "FAIL",
            },
        )
    definition = spec.definition
    extra: dict[str, Any] = {}
    if "catchup" in definition:
        extra["recoverMissedSchedules"] = "ALL" if definition["catchup"] else "NONE"
    max_active = definition.get("max_active_runs")
    if isinstance(max_active, int) and max_active > 0:
        draft.concurrency = {"limit": max_active, "behavior": "QUEUE"}
    draft.schedule_trigger(
        "schedule", spec.schedule, spec.timezone, spec.schedule_native, extra=extra
    )
