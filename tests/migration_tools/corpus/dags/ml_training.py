"""Weekly model training on the GPU pool; reports metrics through the task context."""

from datetime import datetime

from airflow import DAG
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.python import PythonOperator


def publish_metrics(**context):
    run_id = context["run_id"]
    metrics = context["ti"].xcom_pull(task_ids="train")
    print(run_id, metrics)


with DAG(dag_id="ml_training", schedule="@weekly", start_date=datetime(2025, 1, 1)) as dag:
    start = EmptyOperator(task_id="start")
    train = KubernetesPodOperator(
        task_id="train",
        name="trainer",
        namespace="ml",
        image="registry.example.com/trainer:2025.06",
        arguments=["--epochs", "20"],
        container_resources={"limits": {"nvidia.com/gpu": "1", "memory": "16Gi"}},
        node_selector={"pool": "gpu"},
        service_account_name="trainer",
        secrets=["model-registry-token"],
        on_finish_action="delete_pod",
    )
    publish = PythonOperator(task_id="publish", python_callable=publish_metrics)
    end = EmptyOperator(task_id="end")
    start >> train >> publish >> end
