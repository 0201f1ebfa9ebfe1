import pytest

from bastion.errors import Denied, InternalError, Reason
from bastion.guard.finding import Finding
from bastion.pipeline.chain import Pipeline
from bastion.pipeline.exchange import Exchange, SessionInfo
from bastion.pipeline.stage import BaseStage, FailureMode
from bastion.pipeline.verdicts import PASS, Ask, Flag, Mutate, Reject

pytestmark = pytest.mark.anyio


def _exchange(**kw):
    return Exchange(
        session=SessionInfo(session_id="s", transport="memory"),
        method="tools/call",
        params={"name": "x", "arguments": {"a": 1}},
        **kw,
    )


class Recorder(BaseStage):
    def __init__(self, name, log, request=PASS, response=PASS, failure_mode=FailureMode.CLOSED):
        self.name, self.log, self.req, self.resp, self.failure_mode = (
            name,
            log,
            request,
            response,
            failure_mode,
        )

    async def on_request(self, exchange):
        self.log.append(("request", self.name))
        if isinstance(self.req, Exception):
            raise self.req
        return self.req

    async def on_response(self, exchange):
        self.log.append(("response", self.name))
        return self.resp


async def test_request_path_runs_in_order_and_response_path_in_reverse():
    log = []
    pipeline = Pipeline([Recorder("a", log), Recorder("b", log), Recorder("c", log)])
    ex = _exchange()
    assert await pipeline.run_request(ex) is None
    ex.result = {"content": []}
    assert await pipeline.run_response(ex) is None
    assert log == [
        ("request", "a"),
        ("request", "b"),
        ("request", "c"),
        ("response", "c"),
        ("response", "b"),
        ("response", "a"),
    ]


async def test_first_reject_wins_and_later_stages_never_run():
    log = []
    denied = Denied("no")
    pipeline = Pipeline(
        [Recorder("a", log, request=Reject(error=denied, explanation="rule r1")), Recorder("b", log)]
    )
    ex = _exchange()
    assert await pipeline.run_request(ex) is denied
    assert log == [("request", "a")]
    assert ex.outcome == "deny"
    assert ex.decisions[0].explanation == "rule r1"


async def test_mutate_replaces_params_for_later_stages():
    seen = []

    class Peek(BaseStage):
        name = "peek"

        async def on_request(self, exchange):
            seen.append(exchange.params)
            return PASS

    new = {"name": "x", "arguments": {"a": 2}}
    pipeline = Pipeline([Recorder("m", [], request=Mutate(body=new)), Peek()])
    ex = _exchange()
    await pipeline.run_request(ex)
    assert seen == [new] and ex.params == new and ex.outcome == "redact"


async def test_stage_that_raises_fails_closed_by_default():
    pipeline = Pipeline([Recorder("boom", [], request=RuntimeError("detector crashed"))])
    ex = _exchange()
    error = await pipeline.run_request(ex)
    assert isinstance(error, InternalError)
    assert ex.decisions[-1].outcome == "error" and ex.outcome == "error"


async def test_stage_that_raises_with_fail_open_lets_the_call_through_and_records_it():
    pipeline = Pipeline([Recorder("boom", [], request=RuntimeError("x"), failure_mode=FailureMode.OPEN)])
    ex = _exchange()
    assert await pipeline.run_request(ex) is None
    assert ex.decisions[-1].outcome == "error"


async def test_flag_records_findings_and_passes():
    finding = Finding(detector="pii", type="email")
    pipeline = Pipeline([Recorder("f", [], request=Flag(findings=(finding,)))])
    ex = _exchange()
    assert await pipeline.run_request(ex) is None
    assert ex.findings == [finding] and ex.outcome == "flag"


async def test_ask_without_anyone_to_ask_is_a_denial():
    pipeline = Pipeline([Recorder("ask", [], request=Ask(question="ok?"))])
    ex = _exchange()
    error = await pipeline.run_request(ex)
    assert isinstance(error, Denied) and error.reason is Reason.GUARDRAIL_BLOCKED


async def test_ask_approved_by_a_human_passes_and_refused_is_denied():
    for answer, expect_error in ((True, False), (False, True)):

        async def asker(question, answer=answer):
            return answer

        pipeline = Pipeline([Recorder("ask", [], request=Ask(question="ok?"))])
        ex = _exchange(asker=asker)
        error = await pipeline.run_request(ex)
        assert (error is not None) is expect_error
        assert ex.decisions[-1].outcome == ("denied" if expect_error else "approved")


async def test_ask_whose_asker_crashes_is_a_denial():
    async def asker(question):
        raise RuntimeError("client vanished")

    pipeline = Pipeline([Recorder("ask", [], request=Ask(question="ok?"))])
    assert isinstance(await pipeline.run_request(_exchange(asker=asker)), Denied)
