"""The Trio interpreter of wherefore's differential tests (issue 27).

Reads requests from stdin, one JSON object per line: {"id": n, "seed": s, "program": {...}}
(the program as `differential/src/program.rs` serialises it), runs each program on Trio with
`trio.testing.MockClock(autojump_threshold=0)` and Trio's scheduler randomness seeded with `s`,
and writes one line per request: {"id": n, "events": [...]}, the events in the shape of
`differential/src/trace.rs`. One process serves many programs, so Python's start-up is paid
once.

What maps to what (the Rust interpreter, `differential/src/interpret.rs`, does the same in
wherefore's API):
- a scope is a `trio.CancelScope` made when the program starts (so an op can cancel, move or
  shield it before it is entered), entered when its block is reached;
- a nursery is `trio.open_nursery()` inside a `CancelScope` of the same name, which the
  program's `Cancel` cancels (wherefore's way to cancel a group and carry on);
- a member is `start_soon(..., name=path)` running its body in a `CancelScope` of its own,
  made before it is started, which `CancelTask` cancels (wherefore's `JoinHandle::cancel`; a
  member whose own scope absorbed ends cancelled, as wherefore's `TaskExit::Cancelled`); its
  cleanup is `CancelScope(shield=True, deadline=...)` around `trio.sleep_until`, both ends
  computed as `Cleanup::end` computes them;
- a `fail` scope is `trio.fail_at(deadline, shield=...)`, entered (and reachable by ops) from
  its entry on, its `TooSlowError` raised as `TimedOut("t<name>")`;
- the whole program runs inside a scope `horizon` with its deadline at t=10 s, and a system task
  reports the run stuck at t=1,000 s (then lifts every shield and cancels every scope, so that
  the run can end).

It reads Trio's private state in three places, which the pinned version (0.35.0) fixes:
`trio._core._run._r` (the scheduler's randomness), a task's `_cancel_status` chain and a scope's
`_cancel_reason` (which scope holds the cause a task observes), and `CancelScope._cancel`
(wrapped to remember each scope's own first request, the evidence for S14). Evidence for the
comparator's mapped choices is in fields named `trio_*` and in `evidence` events, which the
normalised trace leaves out.
"""

import json
import re
import sys

import outcome
import trio
import trio.testing
from trio._core import _run

HORIZON_MS = 10_000
STUCK_MS = 1_000_000


class Fail(Exception):
    """A program's `Fail` op."""


class Panic(Exception):
    """A program's `Panic` op (a panic in Rust; in Trio, one more exception)."""


class TimedOut(Exception):
    """A `fail_at` scope's `TooSlowError`, named `t<scope>`."""


# Each scope's own first cancel request, whether or not Trio keeps it as the scope's reason.
OWN_REASON = {}
_original_cancel = trio.CancelScope._cancel


def _remembering_cancel(self, cancel_reason):
    if not self._cancel_called and id(self) not in OWN_REASON:
        OWN_REASON[id(self)] = (self, cancel_reason)
    result = _original_cancel(self, cancel_reason)
    if RUNNING:
        RUNNING[0].woken_then_cancelled()
    return result


# The interpreter running now (for the evidence the wrapper above looks for).
RUNNING = []


trio.CancelScope._cancel = _remembering_cancel

OP_ID = re.compile(r"\b(?:op|ts)\d+\b")


SLOT_MS = 40  # differential/src/generate.rs: SLOT


def ms():
    return round(trio.current_time() * 1000)


def end(now, length, residue):
    """The first instant (ms) at least `length` after `now` with this residue (`Cleanup::end`)."""
    at = now + length
    return at + (residue + SLOT_MS - at % SLOT_MS) % SLOT_MS


def is_cancel_only(exc):
    if isinstance(exc, trio.Cancelled):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(is_cancel_only(e) for e in exc.exceptions)
    return False


def leaves(exc, ops, flags):
    if isinstance(exc, BaseExceptionGroup):
        for e in exc.exceptions:
            leaves(e, ops, flags)
    elif isinstance(exc, trio.Cancelled):
        flags["cancelled"] = True
    elif isinstance(exc, (Fail, Panic, TimedOut)):
        ops.append(exc.args[0])
    else:
        ops.append(f"unexpected({exc!r})")


def shape(exc):
    if exc is None:
        return {"shape": "ok"}
    if is_cancel_only(exc):
        return {"shape": "cancelled"}
    ops, flags = [], {"cancelled": False}
    leaves(exc, ops, flags)
    return {"shape": "failed", "ops": sorted(ops), "cancelled": flags["cancelled"]}


class Interpreter:
    def __init__(self, program):
        self.program = program
        self.events = []
        self.scopes = {}  # name -> CancelScope (the wrapper, for a nursery)
        self.names = {}  # id(scope) -> (name, depth of its block), every registered scope
        self.depth = {}  # fail scopes, made at entry: name -> depth
        self.main_task = None
        self.task_scopes = {}  # member name -> its CancelScope (JoinHandle::cancel)
        self.homes = {}  # member name -> its nursery's cancel scope
        self.early_cancels = {}  # member name -> whether its home was cancelled then
        self._make_scopes(program["body"], 1)

    def _make_scopes(self, ops, depth):
        for op in ops:
            if not isinstance(op, dict):
                continue
            if "Scope" in op and op["Scope"].get("fail"):
                self.depth[op["Scope"]["name"]] = depth
                self._make_scopes(op["Scope"]["body"], depth + 1)
            elif "Scope" in op:
                block = op["Scope"]
                deadline = block["deadline"]
                scope = trio.CancelScope(
                    deadline=(deadline / 1000 if deadline is not None else float("inf")),
                    shield=block["shield"],
                )
                self.scopes[block["name"]] = scope
                self.register(scope, block["name"], depth)
                self._make_scopes(block["body"], depth + 1)
            elif "Nursery" in op:
                block = op["Nursery"]
                scope = trio.CancelScope()
                self.scopes[block["name"]] = scope
                self.register(scope, block["name"], depth)
                for member in block["members"]:
                    self._make_scopes(member["body"], depth + 3)
                self._make_scopes(block["body"], depth + 2)

    def register(self, scope, name, depth):
        self.names[id(scope)] = (scope, name, depth)

    def log(self, task, what):
        self.events.append({"t": ms(), "task": task, "what": what})

    # --- causes -----------------------------------------------------------------------------

    def root(self, reason):
        """A Trio cancel reason as the trace prints it: kind, holding scope, failing ops."""
        if reason is None:
            return {"kind": "unknown(none)", "scope": "?"}
        holders = [
            (depth, name)
            for scope, name, depth in self.names.values()
            if scope._cancel_reason is reason and scope._cancel_called
        ]
        holder = min(holders)[1] if holders else "?"
        if reason.source == "explicit":
            return {"kind": "explicit", "scope": holder}
        if reason.source == "deadline":
            return {"kind": "deadline", "scope": holder}
        if reason.source == "nursery":
            text = reason.reason or ""
            raised = text.split("raised exception ", 1)[-1]
            kind = "panic" if raised.startswith("Panic(") else "error"
            ops = sorted(set(OP_ID.findall(text)))
            return {"kind": kind, "scope": holder, "ops": ops}
        return {"kind": f"unknown({reason.source})", "scope": holder}

    def observed(self, task):
        """What the current task observes: the reason of its innermost effectively cancelled
        registered scope (Trio raises the innermost scope's reason; a `trio.sleep`'s own scope
        is skipped, as wherefore's sleep has none)."""
        status = trio.lowlevel.current_task()._cancel_status
        while status is not None:
            if status.effectively_cancelled and id(status._scope) in self.names:
                break
            status = status._parent
        if status is None:
            self.log(task, {"ev": "observed", "cause": {"kind": "unknown(no scope)", "scope": "?"}})
            return
        reason = status._scope._cancel_reason
        what = {"ev": "observed", "cause": self.root(reason)}
        # S14: Trio reports the reason it copied into the scope when its parent's cancellation
        # first reached it, even after that stopped applying and the scope was cancelled
        # itself. wherefore's rule, read off Trio's own records: a scope's effective cause is
        # its parent's while the parent's cancellation applies and came first (Trio copied it:
        # the scope's reason is not its own request), else its own first request.
        ours = self.effective(status)
        if ours != what["cause"]:
            what["trio_own"] = ours
        self.log(task, what)

    def effective(self, status):
        while True:
            scope = status._scope
            mine = OWN_REASON.get(id(scope))
            own = mine[1] if mine is not None and mine[0] is scope else None
            inherited_first = own is None or scope._cancel_reason is not own
            if status.parent_cancellation_is_visible_to_us and inherited_first:
                status = status._parent
                continue
            root = self.root(own)
            if id(scope) in self.names:
                root["scope"] = self.names[id(scope)][1]
            return root

    def passed_deadline(self, task, scope):
        """S13 evidence: Trio checks deadlines in its run loop, so a deadline moved into the
        past has not fired when the task goes on (what the task does next comes first; a later
        move takes it back; a sleep to a past instant returns); wherefore's fires at once."""
        if scope._cancel_status is not None and not scope._cancel_called \
                and scope._deadline <= trio.current_time():
            self.log(task, {"ev": "evidence", "choice": "S13"})

    def others_runnable(self):
        """Whether a task other than this one is scheduled to run at this instant."""
        me = trio.lowlevel.current_task()
        runner = _run.GLOBAL_RUN_CONTEXT.runner
        return any(t is not me and t._next_send is not None for t in runner.tasks)

    def lifted(self, task, exc, home, choice="cancelled-after-lift"):
        """A member, or a nursery's body, ends with a cancellation when its nursery is no longer
        cancelled (a shield was raised above it meanwhile); Trio's nursery takes it in. For a
        member this was a wherefore bug, fixed (`tests/differential_trio.rs`): the evidence is
        no longer mapped. For a body it is the choice that nurseries never absorb
        (`never-absorbs`): wherefore's nursery hands the cancellation up."""
        if not is_cancel_only(exc) or home._cancel_status is None:
            return
        # Trio cancels a nursery when a member ends with any exception, a `Cancelled` too:
        # that request is not one wherefore makes, so it does not count here.
        own = OWN_REASON.get(id(home))
        own = own[1] if own is not None and own[0] is home else None
        by_cancelled_child = own is not None and own.source == "nursery" \
            and "raised exception Cancelled(" in (own.reason or "")
        cancelled = home._cancel_status.parent_cancellation_is_visible_to_us \
            or (own is not None and not by_cancelled_child)
        if not cancelled:
            self.log(task, {"ev": "evidence", "choice": choice})

    def woken_then_cancelled(self):
        """S1 evidence: a task woken with a value (its sleep ended, its nursery's members did)
        that has not run yet, in a scope cancelled now. Trio has decided its wait: it goes on.
        wherefore decides at the task's next poll, by the state then: its cancellation point
        fails (level-triggered)."""
        runner = _run.GLOBAL_RUN_CONTEXT.runner
        for t in runner.tasks:
            if isinstance(t._next_send, outcome.Value) and t._cancel_status is not None \
                    and t._cancel_status.effectively_cancelled \
                    and (t is self.main_task or t.name.startswith("main/")):
                self.log("main", {"ev": "evidence", "choice": "S1"})
                return

    def delivered_under(self, scope):
        """Whether a task under `scope` has a `Cancelled` delivered that it has not run yet."""
        runner = _run.GLOBAL_RUN_CONTEXT.runner
        for t in runner.tasks:
            sent = t._next_send
            if isinstance(sent, outcome.Error) and isinstance(sent.error, trio.Cancelled):
                status = t._cancel_status
                while status is not None:
                    if status._scope is scope:
                        return True
                    status = status._parent
        return False

    # --- ops ---------------------------------------------------------------------------------

    async def point(self, task, awaitable):
        try:
            await awaitable
        except trio.Cancelled:
            self.observed(task)
            raise

    async def ops(self, task, ops):
        for op in ops:
            await self.op(task, op)

    async def op(self, task, op):
        if op == "SleepForever":
            await self.point(task, trio.sleep_forever())
            return
        (kind, arg), = op.items()
        if kind == "SleepUntil":
            # Known, undecided: Trio's sleep to a past instant yields (a schedule point);
            # wherefore's completes at once (its documented `sleep_until`). Visible only when
            # another task can run at this instant.
            if arg / 1000 <= trio.current_time() and self.others_runnable():
                self.log(task, {"ev": "evidence", "choice": "sleep-past"})
            await self.point(task, trio.sleep_until(arg / 1000))
        elif kind == "Fail":
            raise Fail(arg)
        elif kind == "Panic":
            raise Panic(arg)
        elif kind == "CancelTask":
            scope = self.task_scopes.get(arg)
            if scope is not None and scope._has_been_entered:
                scope.cancel(reason=arg)
            elif scope is not None and arg not in self.early_cancels:
                # wherefore's member scope is its nursery's child from the spawn on; Trio's
                # stand-in is entered when the member first runs. A cancel in between is
                # applied there, before or after the entry as the home was cancelled or not
                # when it was asked (S14: whichever came first).
                home = self.homes[arg]
                self.early_cancels[arg] = home._cancel_status.effectively_cancelled
        elif kind == "Cancel":
            scope = self.scopes.get(arg)
            if scope is not None:
                scope.cancel(reason=arg)
        elif kind == "SetDeadline":
            scope = self.scopes.get(arg["scope"])
            if scope is not None:
                scope.deadline = arg["at"] / 1000
                self.passed_deadline(task, scope)
        elif kind == "SetShield":
            scope = self.scopes.get(arg["scope"])
            if scope is not None:
                # S1 evidence: Trio delivered a cancellation to a blocked task when it began
                # (the task's wait was aborted then), so raising a shield before that task runs
                # does not take it back; wherefore's tasks fail at their next poll, by the state
                # then (level-triggered), so the shield does.
                if arg["on"] and scope._cancel_status is not None \
                        and scope._cancel_status.effectively_cancelled \
                        and self.delivered_under(scope):
                    self.log(task, {"ev": "evidence", "choice": "S1"})
                scope.shield = arg["on"]
                self.woken_then_cancelled()
        elif kind == "Scope":
            await self.scope(task, arg)
        elif kind == "Nursery":
            await self.nursery(task, arg)
        else:
            raise ValueError(f"unknown op {op!r}")

    async def fail_scope(self, task, block):
        name = block["name"]
        scope = None
        try:
            with trio.fail_at(block["deadline"] / 1000, shield=block["shield"]) as scope:
                self.scopes[name] = scope
                self.register(scope, name, self.depth[name])
                await self.ops(task, block["body"])
        except trio.TooSlowError:
            if scope is None or not scope.cancelled_caught:
                raise
            own = OWN_REASON.get(id(scope))
            if own is None or own[1] is None or own[1].source != "deadline":
                # S6: Trio raises TooSlowError for any cancellation the scope absorbed;
                # wherefore's fail_at fails with TimedOut only for its own deadline and hands
                # any other cancellation on.
                self.log(task, {"ev": "evidence", "choice": "S6"})
            self.log(task, {"ev": "scope_exit", "scope": name, "caught": True,
                            "out": {"shape": "failed", "ops": [f"t{name}"], "cancelled": False}})
            raise TimedOut(f"t{name}") from None
        except BaseException as exc:
            self.log(task, {"ev": "scope_exit", "scope": name,
                            "caught": scope is not None and scope.cancelled_caught,
                            "out": shape(exc)})
            raise
        self.log(task, {"ev": "scope_exit", "scope": name,
                        "caught": scope.cancelled_caught, "out": shape(None)})

    async def scope(self, task, block):
        if block.get("fail"):
            await self.fail_scope(task, block)
            return
        scope = self.scopes[block["name"]]
        try:
            with scope:
                await self.ops(task, block["body"])
        except BaseException as exc:
            self.log(task, {"ev": "scope_exit", "scope": block["name"],
                            "caught": scope.cancelled_caught, "out": shape(exc)})
            raise
        self.log(task, {"ev": "scope_exit", "scope": block["name"],
                        "caught": scope.cancelled_caught, "out": shape(None)})

    async def nursery(self, task, block):
        wrapper = self.scopes[block["name"]]
        with wrapper:
            try:
                async with trio.open_nursery() as nursery:
                    self.register(nursery.cancel_scope, block["name"],
                                  self.names[id(wrapper)][2] + 1)
                    for member in block["members"]:
                        path = f"{task}/{member['name']}"
                        own = trio.CancelScope()
                        self.task_scopes[member["name"]] = own
                        self.homes[member["name"]] = nursery.cancel_scope
                        self.register(own, path, self.names[id(wrapper)][2] + 2)
                        nursery.start_soon(self.member, path, member, own, name=path)
                    try:
                        await self.ops(task, block["body"])
                    except BaseException as exc:
                        self.lifted(task, exc, nursery.cancel_scope, "never-absorbs")
                        raise
            except BaseException as exc:
                self.nursery_exit(task, block, wrapper, exc)
                raise
            if nursery.cancel_scope.cancelled_caught:
                # Trio's nursery took in a `Cancelled` its body or a child ended with: its own
                # scope, cancelled by that exception, catches it once no ancestor's cancellation
                # is visible (a shield raised above meanwhile). wherefore's nursery never absorbs.
                self.log(task, {"ev": "evidence", "choice": "never-absorbs"})
            self.nursery_exit(task, block, wrapper, None)

    def nursery_exit(self, task, block, wrapper, exc):
        what = {"ev": "nursery_exit", "nursery": block["name"], "out": shape(exc)}
        if wrapper._cancel_status is not None and wrapper._cancel_status.effectively_cancelled:
            what["trio_parent_cancelled"] = True
        self.log(task, what)

    async def member(self, path, member, own):
        self.log(path, {"ev": "started"})
        early = self.early_cancels.get(member["name"])
        if early is False:
            own.cancel(reason=member["name"])
        try:
            with own:  # the member's own scope: what `CancelTask` cancels
                if early is True:
                    own.cancel(reason=member["name"])
                try:
                    await self.ops(path, member["body"])
                except BaseException as exc:
                    cleanup = member["cleanup"]
                    if cleanup is not None and is_cancel_only(exc):
                        await self.cleanup(path, cleanup)
                    raise
        except BaseException as exc:
            self.lifted(path, exc, self.homes[member["name"]])
            self.log(path, {"ev": "ended", "out": shape(exc)})
            raise
        if own.cancelled_caught:
            # Cancelled alone: wherefore's member ends `TaskExit::Cancelled`, no failure.
            self.log(path, {"ev": "ended", "out": {"shape": "cancelled"}})
        else:
            self.log(path, {"ev": "ended", "out": {"shape": "value", "v": member["value"]}})

    async def cleanup(self, path, cleanup):
        now = ms()
        grace = cleanup["grace"]
        deadline = float("inf")
        if grace is not None:
            deadline = end(now, grace[0], grace[1]) / 1000
        scope = trio.CancelScope(shield=True, deadline=deadline)
        self.register(scope, f"{path}.cleanup", 1_000)
        with scope:
            until = end(now, cleanup["sleep"], cleanup["residue"])
            await self.point(path, trio.sleep_until(until / 1000))
            self.log(path, {"ev": "cleanup_done"})

    async def main(self):
        self.main_task = trio.lowlevel.current_task()
        horizon = trio.CancelScope(deadline=HORIZON_MS / 1000)
        self.register(horizon, "horizon", 0)
        exc = None
        try:
            with horizon:
                await self.ops("main", self.program["body"])
        except BaseException as e:
            exc = e
        self.log("main", {"ev": "scope_exit", "scope": "horizon",
                          "caught": horizon.cancelled_caught, "out": shape(exc)})
        self.log("main", {"ev": "ended", "out": shape(exc)})


def run_program(program, seed):
    OWN_REASON.clear()
    _run._r.seed(seed)
    interpreter = Interpreter(program)
    RUNNING[:] = [interpreter]
    stuck = []

    async def watchdog():
        # Every task blocked for good (a shielded wait): report it, then lift every shield and
        # cancel every scope so that the run can end (what happens after is not reported).
        await trio.sleep_until(STUCK_MS / 1000)
        stuck.append(True)
        for scope, _, _ in list(interpreter.names.values()):
            scope.shield = False
            scope.cancel()

    async def root():
        trio.lowlevel.spawn_system_task(watchdog)
        await interpreter.main()

    trio.run(root, clock=trio.testing.MockClock(autojump_threshold=0))
    if stuck:
        events = [e for e in interpreter.events if e["t"] < STUCK_MS]
        events.append({"t": STUCK_MS, "task": "main", "what": {"ev": "stuck"}})
        return events
    return interpreter.events


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            events = run_program(request["program"], request["seed"])
        except BaseException as exc:  # the interpreter's own failure: reported, never hidden
            events = [{"t": 0, "task": "main",
                       "what": {"ev": "error", "message": f"trio interpreter: {exc!r}"}}]
        sys.stdout.write(json.dumps({"id": request["id"], "events": events}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
