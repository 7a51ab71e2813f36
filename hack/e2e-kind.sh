#!/usr/bin/env bash
# End to end on kind, for machines with Docker: build, load, install, trade, back up, delete.
#
#   hack/e2e-kind.sh            (make e2e-kind)
#
# Steps: create a kind cluster; build both images from the Dockerfile and load
# them; helm install the operator chart; apply examples/traderbot-minimal.yaml;
# wait for phase Ready; GET /health/ready through a port-forward; run one
# on-demand backup and check its result; delete the bot and the release.
#
# Needs docker, kind, kubectl, helm, jq and curl on the PATH.
#
# Environment:
#   KIND_CLUSTER        cluster name (default traderbot-e2e); reused when it exists
#   KEEP_CLUSTER=1      leave the cluster (and the bot) running at the end
#   RUN_CLUSTER_TESTS=1 also run the suite's cluster tier against this cluster
#   E2E_TIMEOUT         wait for Ready this long (default 10m)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

cluster="${KIND_CLUSTER:-traderbot-e2e}"
timeout="${E2E_TIMEOUT:-10m}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)"
operator_image="ghcr.io/traderbot-dev/traderbot-operator:${version}"
workload_image="ghcr.io/traderbot-dev/trader-api:${version}"
system_ns=traderbot-system
bot_ns=trading
bot=alpha
local_port=13000
kubeconfig="$(mktemp)"
export KUBECONFIG="${kubeconfig}"
port_forward_pid=""

log() { printf '\n[e2e-kind] %s\n' "$*" >&2; }

for tool in docker kind kubectl helm jq curl; do
  command -v "${tool}" >/dev/null || { log "missing tool: ${tool}"; exit 2; }
done

cleanup() {
  local status=$?
  [[ -n "${port_forward_pid}" ]] && kill "${port_forward_pid}" 2>/dev/null || true
  if (( status != 0 )); then
    log "FAILED (exit ${status}); state for the post-mortem:"
    kubectl -n "${bot_ns}" get tb,all,pvc,jobs -o wide 2>/dev/null || true
    kubectl -n "${bot_ns}" describe tb "${bot}" 2>/dev/null | tail -n 30 || true
    kubectl -n "${system_ns}" logs deploy/traderbot-operator --tail=100 2>/dev/null || true
  fi
  if [[ "${KEEP_CLUSTER:-0}" == 1 ]]; then
    log "keeping cluster ${cluster}: kind export kubeconfig --name ${cluster}"
  else
    kind delete cluster --name "${cluster}" >/dev/null 2>&1 || true
  fi
  rm -f "${kubeconfig}"
  exit "${status}"
}
trap cleanup EXIT

log "cluster ${cluster}"
if ! kind get clusters | grep -qx "${cluster}"; then
  kind create cluster --name "${cluster}" --wait 120s
fi
kind export kubeconfig --name "${cluster}" --kubeconfig "${kubeconfig}"

log "images ${operator_image}, ${workload_image}"
docker build --target operator -t "${operator_image}" .
docker build --target workload -t "${workload_image}" .
kind load docker-image --name "${cluster}" "${operator_image}" "${workload_image}"

log "helm install (chart charts/traderbot-operator)"
helm upgrade --install traderbot-operator charts/traderbot-operator \
  --namespace "${system_ns}" --create-namespace --wait --timeout 5m

log "TraderBot ${bot_ns}/${bot} (examples/traderbot-minimal.yaml)"
kubectl create namespace "${bot_ns}" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "${bot_ns}" apply -f examples/traderbot-minimal.yaml
kubectl -n "${bot_ns}" wait "tb/${bot}" --for=jsonpath='{.status.phase}'=Ready --timeout="${timeout}"
kubectl -n "${bot_ns}" get tb "${bot}"

log "GET /health/ready through a port-forward"
kubectl -n "${bot_ns}" port-forward "svc/${bot}-api" "${local_port}:3000" >/dev/null &
port_forward_pid=$!
ready=""
for _ in $(seq 1 30); do
  if ready="$(curl -fsS "http://127.0.0.1:${local_port}/health/ready")"; then
    break
  fi
  sleep 1  # waiting for the port-forward to listen, not for the bot
done
echo "${ready}" | jq .
echo "${ready}" | jq -e '.status == "ready"' >/dev/null

log "on-demand backup"
if kubectl get crd traderbotbackups.traderbot.dev >/dev/null 2>&1; then
  backup="$(kubectl -n "${bot_ns}" create -o name -f - <<EOF
apiVersion: traderbot.dev/v1alpha1
kind: TraderBotBackup
metadata: {generateName: ${bot}-e2e-}
spec: {botName: ${bot}}
EOF
)"
  kubectl -n "${bot_ns}" wait "${backup}" --for=jsonpath='{.status.phase}'=Completed --timeout=10m
  kubectl -n "${bot_ns}" get "${backup}" -o jsonpath='{.status}' | jq .
else
  # Without the TraderBotBackup CRD: a Job from the backup CronJob's template.
  job="${bot}-backup-e2e-$(date +%s)"
  kubectl -n "${bot_ns}" create job "${job}" --from="cronjob/${bot}-backup"
  kubectl -n "${bot_ns}" wait "job/${job}" --for=condition=complete --timeout=10m
  kubectl -n "${bot_ns}" logs "job/${job}" | tail -n 1 | jq -e '.ok == true'
fi

if [[ "${RUN_CLUSTER_TESTS:-0}" == 1 ]]; then
  log "the suite's cluster tier against this cluster"
  .venv/bin/python -m pytest tests/cluster --use-existing-cluster --kubeconfig "${kubeconfig}"
fi

if [[ "${KEEP_CLUSTER:-0}" != 1 ]]; then
  log "delete"
  kubectl -n "${bot_ns}" delete tb "${bot}" --wait --timeout=5m
  helm uninstall traderbot-operator --namespace "${system_ns}" --wait
fi
log "OK"
