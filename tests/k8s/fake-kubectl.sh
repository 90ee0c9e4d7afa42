#!/usr/bin/env bash
# A stand-in `kubectl` for the tests that run docs/OPERATIONS.md's Job commands verbatim
# (trainer/tests/model_lifecycle.rs): it knows exactly the calls the documented `vericlip_model`
# function makes, against the rendered manifests, and refuses everything else.
#   kubectl create job --from=cronjob/vericlip-train NAME -n vericlip --dry-run=client -o json
#       prints the Job that the CronJob's template makes ($FAKE_KUBECTL_CRONJOB: the rendered
#       CronJob as JSON);
#   kubectl create -f -
#       "runs" the Job read from stdin: refuses a name already taken (as the API server does) and
#       a Job that mounts any claim but vericlip-registry (a lifecycle Job must not wait for the
#       trainer's ReadWriteOnce dataset volume), then runs its container's command and arguments
#       with `vericlip-train` = $FAKE_KUBECTL_TRAIN and the registry's mount path replaced by
#       $FAKE_KUBECTL_REGISTRY (the folder standing in for the volume);
#   kubectl wait -n vericlip --for=condition=complete --timeout=... job/NAME
#       succeeds if that command exited 0, else fails as a timed-out wait does;
#   kubectl logs -n vericlip job/NAME
#       prints what the command printed (stdout and stderr, as a container's log).
# State lives in $FAKE_KUBECTL_STATE (a folder).
set -euo pipefail
: "${FAKE_KUBECTL_STATE:?}" "${FAKE_KUBECTL_CRONJOB:?}" "${FAKE_KUBECTL_TRAIN:?}" "${FAKE_KUBECTL_REGISTRY:?}"
jobs=$FAKE_KUBECTL_STATE/jobs
mkdir -p "$jobs"
echo "kubectl $*" >>"$FAKE_KUBECTL_STATE/calls"
die() { echo "fake kubectl: $*" >&2; exit 2; }

case "${1:-} ${2:-}" in
"create job")
    [ $# -eq 9 ] && [ "$3" = "--from=cronjob/vericlip-train" ] && [ "$5 $6" = "-n vericlip" ] \
        && [ "$7 $8 $9" = "--dry-run=client -o json" ] || die "unexpected call: kubectl $*"
    [[ "$4" =~ ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$ ]] || die "invalid Job name $4"
    jq --arg name "$4" '{apiVersion: "batch/v1", kind: "Job",
        metadata: {name: $name, namespace: "vericlip"}, spec: .spec.jobTemplate.spec}' "$FAKE_KUBECTL_CRONJOB"
    ;;
"create -f")
    [ $# -eq 3 ] && [ "$3" = "-" ] || die "unexpected call: kubectl $*"
    job=$(cat)
    name=$(jq -er 'select(.kind == "Job") | .metadata.name' <<<"$job") || die "stdin is not a Job"
    if [ -e "$jobs/$name" ]; then
        echo "Error from server (AlreadyExists): jobs.batch \"$name\" already exists" >&2
        exit 1
    fi
    mkdir "$jobs/$name"
    printf '%s\n' "$job" >"$jobs/$name/job.json"
    pod='.spec.template.spec'
    claims=$(jq -r "[$pod.volumes[] | .persistentVolumeClaim.claimName // empty] | join(\" \")" <<<"$job")
    [ "$claims" = "vericlip-registry" ] || die "Job $name mounts the claims [$claims], want only vericlip-registry"
    volume=$(jq -r "$pod.volumes[] | select(.persistentVolumeClaim.claimName == \"vericlip-registry\") | .name" <<<"$job")
    mount=$(jq -r --arg v "$volume" "$pod.containers[0].volumeMounts[] | select(.name == \$v and (.readOnly | not)) | .mountPath" <<<"$job")
    [ -n "$mount" ] || die "Job $name does not mount the registry read-write"
    mapfile -t argv < <(jq -r "$pod.containers[0] | (.command + .args)[]" <<<"$job")
    [ "${argv[0]}" = "vericlip-train" ] || die "Job $name runs ${argv[0]}, not vericlip-train"
    argv[0]=$FAKE_KUBECTL_TRAIN
    for i in "${!argv[@]}"; do
        if [ "${argv[$i]}" = "$mount" ]; then argv[$i]=$FAKE_KUBECTL_REGISTRY; fi
    done
    rc=0
    "${argv[@]}" >"$jobs/$name/log" 2>&1 || rc=$?
    echo "$rc" >"$jobs/$name/rc"
    ;;
"wait -n")
    [ $# -eq 6 ] && [ "$3" = vericlip ] && [ "$4" = "--for=condition=complete" ] && [[ "$5" == --timeout=* ]] \
        && [[ "$6" == job/* ]] || die "unexpected call: kubectl $*"
    name=${6#job/}
    [ -e "$jobs/$name/rc" ] || die "no Job $name"
    if [ "$(cat "$jobs/$name/rc")" != 0 ]; then
        echo "error: timed out waiting for the condition on jobs/$name" >&2
        exit 1
    fi
    ;;
"logs -n")
    [ $# -eq 4 ] && [ "$3" = vericlip ] && [[ "$4" == job/* ]] || die "unexpected call: kubectl $*"
    name=${4#job/}
    [ -e "$jobs/$name/log" ] || { echo "Error from server (NotFound): jobs.batch \"$name\" not found" >&2; exit 1; }
    cat "$jobs/$name/log"
    ;;
*)
    die "unexpected call: kubectl $*"
    ;;
esac
