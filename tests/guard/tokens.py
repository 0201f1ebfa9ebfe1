"""Synthetic credentials for the guard tests, assembled at run time so no literal secret lives in the repository."""

from __future__ import annotations

import random
import string

_RNG = random.Random(1234)


def _pick(alphabet: str, n: int) -> str:
    return "".join(_RNG.choice(alphabet) for _ in range(n))


UPPER_DIGITS = string.ascii_uppercase + "234567"
ALNUM = string.ascii_letters + string.digits


def aws_key() -> str:
    return "AK" + "IA" + _pick(UPPER_DIGITS, 16)


def github_token() -> str:
    return "gh" + "p_" + _pick(ALNUM, 36)


def stripe_key() -> str:
    return "sk" + "_live_" + _pick(ALNUM, 24)


def slack_token() -> str:
    return "xo" + "xb-" + _pick(string.digits, 12) + "-" + _pick(string.digits, 13) + "-" + _pick(ALNUM, 24)


def openai_key() -> str:
    return "sk-" + "proj-" + _pick(ALNUM, 24) + "T3Blbk" + "FJ" + _pick(ALNUM, 24)


def private_key_block() -> str:
    body = "\n".join(_pick(ALNUM + "+/", 64) for _ in range(4))
    return "-----BEGIN RSA " + "PRIVATE KEY-----\n" + body + "\n-----END RSA " + "PRIVATE KEY-----"


def random_password() -> str:
    return _pick(ALNUM, 10) + "!7"
