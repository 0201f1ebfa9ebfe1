"""Credential formats with a recognisable shape (prefixes, lengths, alphabets), as data.

Written from the providers' documented token formats, in the spirit of gitleaks' and detect-secrets' public rule
sets: a rule here needs no surrounding context, so it must be specific enough to stand alone (a fixed prefix or
structure). Values that only look random next to a word like `token =` are the generic rule's job
(`secrets.py`). Group `s`, when present, is the secret itself (what gets redacted); otherwise the whole match.
"""

from __future__ import annotations

import re
from typing import Final

from bastion.guard.detector import Rule
from bastion.guard.finding import Severity

_H: Final = Severity.HIGH
_C: Final = Severity.CRITICAL
_M: Final = Severity.MEDIUM

_END: Final = r"(?![\w-])"
"""The token ends here: no more token characters follow."""


def _r(
    type_: str, pattern: str, severity: Severity = _H, flags: int = 0, prefilter: str | None = None
) -> Rule:
    return Rule(type=type_, pattern=pattern, severity=severity, flags=flags, prefilter=prefilter)


PROVIDER_RULES: Final[tuple[Rule, ...]] = (
    # Cloud providers
    _r("aws_access_key", r"\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z2-7]{16}\b", _C),
    _r("aws_bedrock_key", r"\bABSK[A-Za-z0-9+/]{109,269}={0,2}"),
    _r("aws_bedrock_key", r"bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t[A-Za-z0-9+/=]*"),
    _r("gcp_api_key", r"\bAIza[\w-]{35}" + _END),
    _r("gcp_service_account", r"\"type\"\s*:\s*\"service_account\""),
    _r("google_oauth_secret", r"\bGOCSPX-[\w-]{28}" + _END),
    _r("azure_client_secret", r"(?<![\w~.-])[\w~.]{3}\dQ~[\w~.-]{31,34}(?![\w~.-])"),
    _r("azure_storage_key", r"(?i)AccountKey=(?P<s>[A-Za-z0-9+/]{86}==)"),
    _r("azure_sas_token", r"[?&]sig=(?P<s>[A-Za-z0-9%]{43,64}(?:%3D|=){0,2})(?=[&\s\"']|$)"),
    _r("alibaba_access_key", r"\bLTAI[a-zA-Z0-9]{20}\b"),
    _r("digitalocean_token", r"\bdo[opr]_v1_[a-f0-9]{64}\b"),
    _r("ibm_cloud_key", r"(?i)\bibm[_-]?(?:cloud)?[_-]?api[_-]?key\W{1,5}(?P<s>[\w-]{44})\b"),
    _r("yandex_token", r"\bt1\.[A-Z0-9a-z_-]+={0,2}\.[A-Z0-9a-z_-]{86}={0,2}"),
    _r("yandex_api_key", r"\bAQVN[A-Za-z0-9_-]{35,38}" + _END),
    _r("yandex_access_key", r"\bYC[a-zA-Z0-9_-]{38}" + _END, _M),
    # Source hosting and CI
    _r("github_token", r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b", _C),
    _r("github_token", r"\bgithub_pat_\w{82}\b", _C),
    _r("gitlab_token", r"\bgl(?:pat|ptt|rt|cbt|dt|ffct|ft|imt|agent|oas|soat)-[\w.-]{20,300}" + _END, _C),
    _r("gitlab_token", r"\bGR1348941[\w-]{20}" + _END),
    _r("gitlab_session", r"\b_gitlab_session=(?P<s>[0-9a-z]{32})\b"),
    _r("bitbucket_token", r"\bATBB[a-zA-Z0-9]{32}\b"),
    _r("atlassian_token", r"\bATATT3[A-Za-z0-9_\-=]{186}"),
    _r("npm_token", r"\bnpm_[A-Za-z0-9]{36}\b"),
    _r("pypi_token", r"\bpypi-AgEIcHlwaS5vcmc[\w-]{50,}"),
    _r("rubygems_token", r"\brubygems_[a-f0-9]{48}\b"),
    _r("clojars_token", r"(?i)\bCLOJARS_[a-z0-9]{60}\b"),
    _r("travis_token", r"(?i)\btravis[_-]?(?:ci[_-]?)?token\W{1,5}(?P<s>[a-z0-9]{22})\b", _M),
    _r("artifactory_token", r"\bAKCp[A-Za-z0-9]{69}\b"),
    _r("artifactory_token", r"\bcmVmd[A-Za-z0-9]{59}\b"),
    _r("droneci_token", r"(?i)\bdrone\w{0,10}\W{1,5}(?P<s>[a-z0-9]{32})\b", _M),
    _r("pulumi_token", r"\bpul-[a-f0-9]{40}\b"),
    _r("terraform_token", r"\b[a-z0-9]{14}\.atlasv1\.[a-z0-9=_-]{60,70}"),
    _r("vault_token", r"\bhv[sb]\.[\w-]{90,120}"),
    _r("vault_token", r"(?<![\w.])s\.(?=[a-z0-9]*[A-Z])(?=[A-Za-z]*[0-9])[A-Za-z0-9]{24}\b", _M),
    _r("doppler_token", r"\bdp\.(?:pt|st|sa|ct|scim|audit)\.[a-zA-Z0-9]{40,44}\b"),
    _r("harness_token", r"\b(?:pat|sat)\.[\w-]{22}\.[\w-]{24}\.[\w-]{20}\b"),
    _r("octopus_key", r"\bAPI-[A-Z0-9]{26}\b", _M),
    _r("prefect_token", r"\bpnu_[a-zA-Z0-9]{36}\b"),
    _r("scalingo_token", r"\btk-us-[\w-]{48}\b"),
    _r("databricks_token", r"\bdapi[a-f0-9]{32}(?:-\d)?\b"),
    _r("dynatrace_token", r"\bdt0c01\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}\b"),
    _r("fly_token", r"\bfo1_[\w-]{43}" + _END),
    _r("fly_token", r"\bfm[12][ar]?_[a-zA-Z0-9+/]{100,}={0,3}"),
    _r("frameio_token", r"\bfio-u-[\w=-]{64}" + _END),
    _r("grafana_token", r"\beyJrIjoi[A-Za-z0-9]{70,400}={0,3}"),
    _r("grafana_token", r"\bglc_[A-Za-z0-9+/]{32,400}={0,3}"),
    _r("grafana_token", r"\bglsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}\b"),
    _r("sentry_token", r"\bsntry[us]_[a-zA-Z0-9+/=_]{64,}"),
    _r("sourcegraph_token", r"\bsgp_(?:[a-fA-F0-9]{16}|local)_[a-fA-F0-9]{40}\b|\bsgp_[a-fA-F0-9]{40}\b"),
    _r("readme_token", r"\brdme_[a-z0-9]{70}\b"),
    _r("infracost_token", r"\bico-[a-zA-Z0-9]{32}\b"),
    _r("defined_networking_token", r"\bdnkey-[a-z0-9=_-]{26}-[a-z0-9=_-]{52}"),
    _r("settlemint_token", r"\bsm_(?:pat|aat|sat)_[a-zA-Z0-9]{16}\b"),
    _r("linear_token", r"\blin_api_[a-zA-Z0-9]{40}\b"),
    _r("postman_token", r"\bPMAK-[a-fA-F0-9]{24}-[a-fA-F0-9]{34}\b"),
    _r("planetscale_token", r"\bpscale_(?:tkn|oauth|pw)_[\w=.-]{32,64}"),
    # Messaging, payments, SaaS
    _r("slack_token", r"\bxox[abposr]-(?:\d-)?\d{6,}(?:-[0-9A-Za-z]{6,})+(?![\w#*-])", _C),
    _r("slack_token", r"\bxoxe(?:\.xox[bp])?-\d-[A-Za-z0-9]{140,170}\b", _C),
    _r("slack_token", r"\bxapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+\b"),
    _r("slack_webhook", r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{40,100}"),
    _r("discord_webhook", r"discord(?:app)?\.com/api/webhooks/\d+/[\w-]{60,70}"),
    _r("discord_bot_token", r"\b[MN][A-Za-z\d]{23,25}\.[\w-]{6}\.[\w-]{27,38}\b"),
    _r("telegram_bot_token", r"\b\d{8,10}:AA[\w-]{33}" + _END),
    _r("stripe_key", r"\b(?:sk|rk)_(?:test|live|prod)_[a-zA-Z0-9]{10,99}\b", _C),
    _r("square_token", r"\bsq0(?:atp|csp)-[\w\\-]{22,43}"),
    _r("square_token", r"\bEAAA[\w+=-]{60}\b"),
    _r("shopify_token", r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b"),
    _r("paypal_braintree_token", r"\baccess_token\$production\$[0-9a-z]{16}\$[0-9a-f]{32}\b"),
    _r("flutterwave_key", r"\bFLW(?:PUBK|SECK)_TEST-[a-h0-9]{12,32}(?:-X)?\b"),
    _r("duffel_token", r"\bduffel_(?:test|live)_[\w=-]{43}"),
    _r("easypost_token", r"\bEZ[AT]K[a-zA-Z0-9]{54}\b"),
    _r("shippo_token", r"\bshippo_(?:live|test)_[a-fA-F0-9]{40}\b"),
    _r(
        "plaid_token",
        r"\baccess-(?:sandbox|development|production)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
    ),
    _r("sendgrid_key", r"\bSG\.[\w=.-]{66}" + _END, _C),
    _r("sendinblue_key", r"\bxkeysib-[a-f0-9]{64}-[a-zA-Z0-9]{16}\b"),
    _r("mailgun_key", r"\b(?:pub)?key-[a-f0-9]{32}\b"),
    _r("mailchimp_key", r"\b[0-9a-f]{32}-us\d{1,2}\b"),
    _r("twilio_key", r"\bSK[0-9a-fA-F]{32}\b"),
    _r("messagebird_key", r"(?i)\bmessage[_-]?bird\w{0,10}\W{1,5}(?P<s>[a-z0-9]{25})\b", _M),
    _r("new_relic_key", r"\bNR(?:AK|II|JS|RA|AA)-[a-zA-Z0-9-]{19,32}\b"),
    _r("notion_token", r"\bntn_[0-9]{11}[A-Za-z0-9]{32,35}\b"),
    _r("openai_key", r"\bsk-(?:proj-|svcacct-|admin-)?[\w-]{20,160}T3BlbkFJ[\w-]{20,160}\b", _C),
    _r("anthropic_key", r"\bsk-ant-(?:api03|admin01)-[\w-]{93}AA\b", _C),
    _r("huggingface_token", r"\b(?:hf_|api_org_)[a-zA-Z]{34}\b"),
    _r("perplexity_key", r"\bpplx-[a-zA-Z0-9]{48}\b"),
    _r("groq_key", r"\bgsk_[a-zA-Z0-9]{52}\b"),
    _r("xai_key", r"\bxai-[a-zA-Z0-9]{80}\b"),
    _r("mapbox_token", r"\b[ps]k\.[a-zA-Z0-9]{60}\.[a-zA-Z0-9]{22}\b"),
    _r("heroku_key", r"\bHRKU-AA[0-9a-zA-Z_-]{58}" + _END),
    _r("age_secret_key", r"\bAGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}\b", _C),
    _r(
        "onepassword_secret_key",
        r"\bA3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}\b",
        _C,
    ),
    _r("onepassword_token", r"\bops_eyJ[a-zA-Z0-9+/]{250,}={0,3}"),
    _r("cloudflare_ca_key", r"\bv1\.0-[a-f0-9]{24}-[a-f0-9]{146}\b"),
    _r("facebook_token", r"\bEAA[MC][a-zA-Z0-9]{100,}"),
    _r("facebook_token", r"(?i)\bfacebook.{0,40}?(?P<s>\b\d{15,16}(?:\||%7C)[\w-]{27})"),
    _r("adobe_client_secret", r"\bp8e-[a-zA-Z0-9]{32}\b"),
    _r("twitter_bearer", r"\bA{22}[A-Za-z0-9%]{80,120}"),
    _r("airtable_token", r"\bpat[a-zA-Z0-9]{14}\.[a-f0-9]{64}\b"),
    _r("intra42_secret", r"\bs-s4t2(?:ud|af)-[a-f0-9]{64}\b"),
    _r("typeform_token", r"\btfp_[\w=.-]{59}"),
    _r("beamer_token", r"(?i)\bbeamer\w{0,20}\W{1,5}(?P<s>b_[a-z0-9=_-]{44})"),
    _r("gocardless_token", r"\blive_[\w=-]{40}" + _END, _M),
    _r("lob_key", r"\b(?:live|test)_(?:pub_)?[a-f0-9]{31,35}\b", _M),
    _r("jfrog_token", r"(?i)\bjfrog\w{0,30}\W{1,5}(?P<s>[a-z0-9]{64,73})\b", _M),
    # Structural: keys, tokens, credentials inside URLs and headers
    _r(
        "private_key",
        r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----(?P<body>[\s\S]{0,16000}?)"
        r"(?:-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|(?=\x00)|\Z)",
        _C,
        prefilter=r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY",  # the long lazy body costs Hyperscan ~15 s to compile
    ),
    _r(
        "putty_private_key",
        r"PuTTY-User-Key-File-\d: [\w-]+\s+Encryption: [\w-]+[\s\S]{0,4000}?Private-Lines: \d+",
        _C,
        prefilter=r"PuTTY-User-Key-File-\d: ",  # the {0,4000} span alone costs Hyperscan minutes to compile
    ),
    _r("jwt", r"\bey[A-Za-z0-9_-]{15,}\.ey[A-Za-z0-9/\\_-]{15,}\.(?:[A-Za-z0-9/\\_-]{10,}={0,2})?"),
    _r(
        "connection_string",
        r"(?i)\b[a-z][a-z0-9+.-]{1,20}://(?P<user>[^\s:/@'\"`]{0,64}):(?P<s>[^\s:/@'\"`]{3,128})@(?P<host>[\w.\[\]-]+)",
        _H,
    ),
    _r(
        "authorization_header",
        r"(?i)\b(?:proxy-)?authorization\s*:\s*(?:(?:bearer|basic|token|digest|apikey|sso-key)\s+)?"
        r"(?P<s>[\w.~+/=:$*{}-]{8,600})",
        _H,
    ),
    _r(
        "basic_auth_credentials",
        r"(?:\s-u|--user)(?:\s+|=)['\"]?(?P<user>[^\s:'\"]{1,64}):['\"]?(?P<s>[^\s'\"]{3,128})",
        _H,
    ),
)
"""Every provider-format rule; the engine merges them into its one pass."""

HAS_SECRET_GROUP: Final = tuple(
    "s" in re.compile(rule.pattern, rule.flags).groupindex for rule in PROVIDER_RULES
)
"""Whether each rule marks the secret with group `s` (else the whole match is the secret)."""
