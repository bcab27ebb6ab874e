"""Run moto's AWS emulator on loopback for the local end-to-end tests, with CompleteLifecycleAction.

Usage: moto_server.py --port PORT [--host 127.0.0.1]
Environment: LLM_SANDBOX_LIFECYCLE_RECORD names the file that receives one JSON line per
completed lifecycle action: {"group": ..., "hook": ..., "instance": ..., "result": ...}.

Why the patch: the node agent's last step is autoscaling CompleteLifecycleAction (CONTINUE when
the node is ready, ABANDON when it is not), and that is what the end-to-end tests must observe.
moto 5.2.5 does not implement it (moto/autoscaling/responses.py has put/describe/delete
lifecycle hook, nothing that completes an action), so its server would answer the SDK's call with
an error. This launcher adds the action to moto's AutoScalingResponse: it validates the request
the way AWS does (the group exists, the hook exists on that group, the instance belongs to the
group and has an action pending on that hook, the result is CONTINUE or ABANDON, else a
ValidationError), records the completion, and returns the empty CompleteLifecycleActionResponse
through moto's own botocore-driven serializer. Everything else is moto unchanged.

Runs until SIGTERM or SIGINT, then stops the server and exits 0.
"""

import argparse
import json
import os
import signal
import sys
import threading

from moto.autoscaling.exceptions import ValidationError
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import EmptyResult
from moto.server import ThreadedMotoServer

RECORD_ENV = "LLM_SANDBOX_LIFECYCLE_RECORD"
RESULTS = ("CONTINUE", "ABANDON")

_record_lock = threading.Lock()
# (account, region, group, hook, instance) of every completed action: like AWS, an action can be
# completed once; a second call finds no pending action.
_completed = set()


def complete_lifecycle_action(self):
    """CompleteLifecycleAction for moto's AutoScalingResponse (see the module docstring)."""
    backend = self.autoscaling_backend
    group_name = self._get_param("AutoScalingGroupName")
    hook_name = self._get_param("LifecycleHookName")
    instance_id = self._get_param("InstanceId")
    token = self._get_param("LifecycleActionToken")
    result = self._get_param("LifecycleActionResult")

    group = backend.autoscaling_groups.get(group_name)
    if group is None:
        raise ValidationError(f"AutoScalingGroup name not found - {group_name}")
    hook = backend.lifecycle_hooks.get(f"{group_name}_{hook_name}")
    if hook is None:
        raise ValidationError(
            f"No Lifecycle Hook found for hook name {hook_name} on Auto Scaling group {group_name}"
        )
    if result not in RESULTS:
        raise ValidationError(
            f"Value '{result}' at 'lifecycleActionResult' failed to satisfy constraint: "
            "Member must be one of CONTINUE, ABANDON"
        )
    if not instance_id:
        # The SDK may send a token instead; the agent sends its instance id, and the tests need
        # the instance to check which node completed.
        raise ValidationError(
            "This launcher needs InstanceId (got "
            + ("a LifecycleActionToken only)" if token else "neither InstanceId nor LifecycleActionToken)")
        )
    members = {state.instance.id for state in group.instance_states}
    key = (self.current_account, self.region, group_name, hook_name, instance_id)
    if instance_id not in members or key in _completed:
        raise ValidationError(f"No active Lifecycle Action found with instance ID {instance_id}")

    line = json.dumps(
        {"group": group_name, "hook": hook_name, "instance": instance_id, "result": result},
        sort_keys=True,
    )
    with _record_lock:
        _completed.add(key)
        with open(os.environ[RECORD_ENV], "a", encoding="utf-8") as record:
            record.write(line + "\n")
    return EmptyResult()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback)")
    parser.add_argument("--port", type=int, required=True, help="port to bind")
    args = parser.parse_args()
    if not os.environ.get(RECORD_ENV):
        parser.error(f"{RECORD_ENV} must name the file that records lifecycle actions")

    AutoScalingResponse.complete_lifecycle_action = complete_lifecycle_action
    return serve(args.host, args.port)


def serve(host, port):
    """Run moto's server on host:port until SIGTERM or SIGINT, then stop it and return 0.

    tools/moto_preflight.py serves the same way, with its own patches applied first.
    """
    # Block the stop signals before the server thread starts (it inherits the mask) and wait for
    # them synchronously: no Python signal handler runs, so none can deadlock on a lock that the
    # interrupted main thread holds.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)

    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    print(f"moto listening on {host}:{port}", flush=True)
    received = signal.sigwait(stop_signals)
    print(f"moto stopping on {signal.Signals(received).name}", flush=True)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
