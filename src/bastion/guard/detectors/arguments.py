"""The `arguments` detector: dangerous tool-call arguments (path traversal, sensitive and out-of-root paths, SSRF
targets, shell command injection).

It judges values an agent sends to a server, so it runs in the `request` direction. It knows nothing of the server's
own checks: it assumes the worst (a path is opened, a URL fetched, a string pasted into a shell).

Why the severities: a single `../` or a log path is routine for some tools (`medium`); encoded or deep traversal,
credential files, metadata endpoints and command substitution are not (`high`/`critical`). For tools that exist to run
commands (`exec_tools`), chaining ordinary commands is their job and only the dangerous patterns are reported.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Callable, Sequence
from typing import Final
from urllib.parse import unquote

from bastion.guard.config import ArgumentsConfig
from bastion.guard.detector import Direction, Hit, Rule, ScanContext
from bastion.guard.detectors.netaddr import classify_host, url_host
from bastion.guard.detectors.standalone import StandaloneScan
from bastion.guard.finding import Finding, Severity

_I: Final = re.IGNORECASE
_DOT: Final = r"(?:\.|%2e|%252e|%c0%2e|%c0%ae|%e0%80%ae|%uff0e|0x2e|%%32%65)"
_SEP: Final = r"(?:/|\\|%2f|%5c|%252f|%255c|%c0%af|%c1%9c|%c0%5c|%c1%1c|0x2f|0x5c|%%32%66|2f\b|5c\b)"
_STRONG_COMMANDS: Final = (
    r"(?:id|whoami|uname|ls|cat|curl|wget|nc|ncat|netcat|bash|sh|zsh|ksh|csh|dash|powershell|pwsh|cmd(?:\.exe)?|python[23]?"
    r"|perl|ruby|php|nslookup|telnet|ssh|scp|tftp|rm|chmod|chown|mkfifo|mknod|certutil|bitsadmin|wmic|systeminfo|ipconfig"
    r"|ifconfig|hostname|printenv|xterm|base64|killall|useradd|passwd|crontab|nohup|socat|openssl|netstat|netsh|pwd"
    r"|net\s+(?:user|localgroup|view|share|use|stop|start|session|accounts))"
)
"""Commands whose name is not also an everyday word: after a chaining operator they are an injection."""
_WEAK_COMMANDS: Final = (
    r"(?:type|dir|set|at|find|kill|echo|env|eval|exec|ping|sleep|timeout|net|reg|sc|su|tar|sed|awk|dig|host)"
)
"""Commands that are also English words: they count only with a shell-looking argument after them."""
_SHELL_ARG: Final = r"(?:\s+(?:-{1,2}\w|/\w|%\w|\$\w|\d|[A-Za-z]:\\|['\"]|\w+\s*(?:[;|&]|\\[nr]|$|\x00))|\s*(?:[;|&`]|\\[nr]|$|\x00))"
_COMMANDS: Final = rf"(?:{_STRONG_COMMANDS}(?![\w.-])|{_WEAK_COMMANDS}\b(?={_SHELL_ARG}))"
_OPERATOR: Final = r"(?:;|&&?|\|\|?|%0a|%0d|%26|%3b|%7c|\\n|\\r)"
_DANGEROUS_COMMANDS: Final = re.compile(
    r"(?i)^\s*(?:sudo\s+)?(?:curl|wget|nc|ncat|netcat|bash|sh|zsh|powershell|pwsh|cmd|python[23]?|perl|ruby|php|rm|chmod"
    r"|mkfifo|certutil|bitsadmin|wmic|net|reg|useradd|passwd|crontab|shutdown|reboot|socat|telnet|base64)\b"
)
_SENSITIVE_HIGH: Final = (
    r"/etc/(?:passwd|shadow|gshadow|sudoers|master\.passwd|security/opasswd|ssh/\w*key)|/proc/(?:self|\d+)/(?:environ|cmdline|mem|maps|fd)"
    r"|/root/|\.ssh/(?:id_\w+|authorized_keys|known_hosts|config)|\.aws/credentials|\.htpasswd|wp-config\.php|\.git-credentials"
    r"|(?:(?<=[/\\])|^)\.env(?:\.\w+)?\b|/var/run/secrets|\.kube/config|\.docker/config\.json|win\.ini|boot\.ini|[\\/]sam\b|[\\/]repair[\\/]"
    r"|%systemroot%|%windir%|system32[\\/]config|unattend\.xml|\.bash_history|id_rsa"
    r"|(?:^|(?<=[\x00/\\]))\.(?:netrc|rhosts|shosts|pgpass|my\.cnf|sh_history|zsh_history|mysql_history|psql_history|npmrc|pypirc)\b"
    r"|(?:^|(?<=[\x00/\\]))(?:etc[/\\])?\.?(?:passwd|shadow|master\.passwd|htpasswd)(?:\.dat)?(?=$|[\x00\s])"
)
_SENSITIVE_MEDIUM: Final = (
    r"(?<![\w.~-])(?:/etc/|/proc/|/sys/|/boot/|/dev/(?:tcp|udp|mem|kmem)|/var/log/|/var/lib/|/var/www/|/usr/local/(?:apache|etc|nginx)"
    r"|/opt/lampp/|/xampp/|[a-z]:[\\/](?:windows|winnt|boot|inetpub|xampp|appserv|program\s?files|apache|mysql)"
    r"|(?:httpd|apache2?|nginx|php|my)\.(?:conf|ini|cnf)\b|\.htaccess\b|(?:access|error)[._]log\b|inetpub|inetsrv|metabase\.xml"
    r"|(?:^|(?<=[\x00/\\]))\.(?:bashrc|bash_profile|profile|cshrc|tcshrc|zshrc|kshrc|login|logout|forward)\b)"
)

RULES: Final[tuple[Rule, ...]] = (
    Rule(
        type="path_traversal",
        pattern=rf"{_DOT}{_DOT}{_SEP}|{_SEP}{_DOT}{_DOT}(?:{_SEP}|(?=\x00)|$)|(?:^|(?<=\x00))\.\.(?=\x00|$)",
        flags=_I,
        severity=Severity.MEDIUM,
        prefilter=rf"(?i){_DOT}{_DOT}",
    ),
    Rule(
        type="path_traversal",
        pattern=r"\.{3,}[/\\]{2,}|\.\.[/\\]{2,}|(?:\.[/\\]){6,}|%00|\\0\b",
        flags=_I,
        severity=Severity.HIGH,
    ),
    Rule(
        type="encoded_path",
        pattern="%[0-9a-fu%]|0x2e|\\.\\.;|[\uff0e\u2215\u2216\uff0f\uff3c]",
        flags=_I,
        prefilter=r"(?i)%[0-9a-fu%]|0x2e|\.\.;|\xEF\xBC[\x8E\x8F]|\xE2\x88[\x95\x96]|\xEF\xBC\xBC",
        severity=Severity.HIGH,
    ),
    Rule(type="sensitive_path", pattern=_SENSITIVE_HIGH, flags=_I, severity=Severity.HIGH),
    Rule(
        type="sensitive_path",
        pattern=_SENSITIVE_MEDIUM,
        flags=_I,
        severity=Severity.MEDIUM,
        prefilter=r"(?i)/etc/|/proc/|/sys/|/boot/|/dev/|/var/|/usr/local/|/opt/lampp|/xampp|[a-z]:[\\/]|\.(?:conf|ini|cnf)\b|\.htaccess|_log|\.log|inetpub|inetsrv|metabase|\.(?:bash|profile|cshrc|tcshrc|zshrc|kshrc|login|logout|forward)",
    ),
    Rule(
        type="ssrf",
        pattern=r"\b(?:https?|ftps?|gopher|dict|file|ldaps?|tftp|jar|netdoc|php|sftp|smb|wss?|redis|mysql|postgres(?:ql)?|mongodb|expect|phar)://[^\s'\"<>`]*",
        flags=_I,
        severity=Severity.HIGH,
    ),
    Rule(
        type="command_injection",
        pattern=rf"{_OPERATOR}\s*(?:['\"]\s*)?(?:sudo\s+)?(?:/(?:usr/)?s?bin/)?{_COMMANDS}",
        flags=_I,
        severity=Severity.HIGH,
    ),
    Rule(
        type="command_injection",
        pattern=r"\$\{IFS\}|\(\)\s*\{\s*:;\s*\}\s*;|:\(\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;",
        severity=Severity.CRITICAL,
    ),
    Rule(
        type="command_injection",
        pattern=r"\b(?:nc|ncat|netcat)\b[^\n|;&]{0,60}\s-[a-z]*[ec]\s+\S*(?:sh|cmd)|/dev/(?:tcp|udp)/\S+|\bbash\s+-i\s+>&|\bmkfifo\s+/tmp/"
        r"|\b(?:curl|wget)\b[^|\n]{0,200}\|\s*(?:sudo\s+)?(?:ba|z|k)?sh\b|\brm\s+-[a-z]*r[a-z]*f?\s+/(?:\s|$|\*)|\bIEX\s*\(|Invoke-Expression"
        r"|\bpowershell(?:\.exe)?\s+-(?:e|enc|encodedcommand)\s|\bcertutil\s+-urlcache|\bpython[23]?\s+-c\s+['\"]import\s+(?:socket|os|pty|subprocess)"
        r"|\buse\s+Socket\s*;|<\?php[^>]{0,200}?\b(?:system|exec|passthru|shell_exec|popen|proc_open|eval|include|require)\s*\("
        r"|\bphp\s+-r\s+['\"]\$sock|\bnet\s+user\s+\S+\s+\S+\s+/add|\breg\s+add\s+['\"]?HK",
        flags=_I,
        severity=Severity.CRITICAL,
    ),
    Rule(
        type="command_injection",
        pattern=rf"\$\(\s*`?\s*(?:/(?:usr/)?s?bin/)?{_COMMANDS}[^)]*\)",
        flags=_I,
        severity=Severity.HIGH,
    ),
    Rule(
        type="command_injection",
        pattern=rf"`\s*(?:/(?:usr/)?s?bin/)?{_COMMANDS}[^`]*`",
        flags=_I,
        severity=Severity.MEDIUM,
    ),
    Rule(
        type="command_injection",
        pattern=r"\{\$\{\w+\(|\b(?:eval|system|exec|passthru|shell_exec|popen)\s*\(\s*['\"]",
        flags=_I,
        severity=Severity.MEDIUM,
    ),
    Rule(
        type="command_injection",
        pattern=r"\bphp(?:info|version)\s*\(\s*\)|\$\{@?\w+\(|\{\$_(?:GET|POST|REQUEST|SERVER|COOKIE)\[|<!--#exec\s+cmd=",
        flags=_I,
        severity=Severity.HIGH,
    ),
)

_DANGEROUS_SCHEMES: Final = frozenset(
    {"gopher", "dict", "file", "ldap", "ldaps", "tftp", "jar", "netdoc", "php", "expect", "phar"}
)
_PATH_KEYS: Final = re.compile(
    r"(?i)(?:path|file|filename|dir|directory|folder|source|src|destination|dest|target|cwd|root|location)s?$"
)
_HOST_KEYS: Final = re.compile(
    r"(?i)(?:url|uri|href|link|endpoint|host|hostname|address|server|domain|webhook|callback)s?$"
)


class ArgumentsDetector(StandaloneScan):
    """Dangerous values in tool-call arguments."""

    name = "arguments"

    def __init__(self, config: ArgumentsConfig | None = None) -> None:
        self.config = config if config is not None else ArgumentsConfig()
        self.rules: tuple[Rule, ...] = RULES
        self._roots = tuple(posixpath.normpath(r.replace("\\", "/")) for r in self.config.roots)
        self._exec_tools: dict[str, bool] = {}
        """Tool name -> exec-like, remembered: the glob match costs more than the rest of a confirmation."""
        self._host_kinds: dict[str, str | None] = {}
        """Host -> `classify_host` verdict after `allow_hosts`, remembered: API results repeat a few hosts."""

    def scan(self, text: str, context: ScanContext) -> list[Finding]:
        """Standalone use: this detector's own single pass plus the every-string check."""
        found = super().scan(text, context)
        if self.wants_every_string(context.direction):
            found.extend(self.check(text, context))
        return found

    def wants_every_string(self, direction: Direction) -> bool:
        """Roots and bare host names need every argument string, not only those a regex picked."""
        return direction is Direction.REQUEST

    def check(self, text: str, context: ScanContext) -> list[Finding]:
        """Paths outside the configured roots; bare hosts in URL-like arguments."""
        out: list[Finding] = []
        key = context.key or ""
        stripped = text.strip()
        if self._roots and _PATH_KEYS.search(key) and stripped and "\n" not in stripped:
            if not self._inside_roots(stripped):
                out.append(self._finding("outside_roots", Severity.HIGH, 0, len(text), context))
        if _HOST_KEYS.search(key) and "://" not in stripped and stripped and " " not in stripped:
            host = stripped.split("/", 1)[0].rsplit("@", 1)[-1]
            host = host[1 : host.find("]")] if host.startswith("[") and "]" in host else host.split(":", 1)[0]
            kind = self._host_kind(host.lower())
            if kind is not None:
                severity = Severity.CRITICAL if kind == "metadata" else Severity.HIGH
                out.append(self._finding("ssrf", severity, 0, len(text), context))
        return out

    def confirm(self, text: str, hits: Sequence[Hit], context: ScanContext) -> list[Finding]:
        """Validate candidates: URLs by where they point, commands by tool kind, traversal by depth and encoding."""
        found: list[Finding] = []
        exec_tool = self._is_exec_tool(context.tool)
        decoded_done = False
        for hit in hits:
            rule = self.rules[hit.rule]
            m = hit.match
            severity: Severity | None = rule.severity
            if rule.type == "encoded_path":
                if not decoded_done:
                    decoded_done = True
                    found.extend(self._encoded(text, context))
                continue
            if rule.type == "ssrf":
                severity = self._url_severity(m.group(0), whole=m.group(0) == text.strip())
            elif rule.type == "sensitive_path" and severity is Severity.MEDIUM and not _single_path(text):
                severity = None  # a system path mentioned in a command or a sentence, not a path argument
            elif rule.type == "path_traversal" and severity is Severity.MEDIUM:
                severity = self._traversal_severity(text)
            elif rule.type == "command_injection" and _in_data_uri_header(text, m.start()):
                severity = None  # `data:text/plain;base64,...`: a media-type parameter, not a command chain
            elif (
                rule.type == "command_injection"
                and m.group(0).lstrip().startswith("|")
                and _not_a_pipe(text, m.start())
            ):
                severity = None  # `name|id` alternatives and markdown table cells, not pipes
            elif rule.type == "command_injection" and exec_tool and severity is Severity.HIGH:
                # Chaining is what a shell tool is for; report only chained dangerous commands.
                tail = text[m.end() - len(m.group(0).lstrip(";&|`$( \n\r")) :]
                if not _DANGEROUS_COMMANDS.match(tail):
                    severity = None
            if severity is None:
                continue
            found.append(self._finding(rule.type, severity, m.start(), m.end(), context))
        return _dedupe(found)

    def _encoded(self, text: str, context: ScanContext) -> list[Finding]:
        """Traversal and sensitive paths hidden by URL, double, overlong-UTF-8, %u or full-width encoding."""
        if len(text) > _MAX_ENCODED_PATH:
            return []  # a document, not a path: decoding it would cost more than it could reveal
        decoded = decode_path(text)
        if decoded == text:
            return []
        out: list[Finding] = []
        if _DECODED_TRAVERSAL.search(decoded):
            out.append(self._finding("path_traversal", Severity.HIGH, 0, len(text), context))
        if _SENSITIVE_HIGH_RE.search(decoded) or _SENSITIVE_MEDIUM_RE.search(decoded):
            out.append(self._finding("sensitive_path", Severity.HIGH, 0, len(text), context))
        return out

    def _finding(self, type_: str, severity: Severity, start: int, end: int, context: ScanContext) -> Finding:
        return Finding(
            detector=self.name,
            type=type_,
            severity=severity,
            confidence=0.8,
            path=context.path,
            start=start,
            end=end,
        )

    def _is_exec_tool(self, tool: str | None) -> bool:
        if tool is None:
            return False
        known = self._exec_tools.get(tool)
        if known is None:
            known = any(fnmatch.fnmatchcase(tool.lower(), g) for g in self.config.exec_tools)
            if len(self._exec_tools) >= 4096:
                self._exec_tools.clear()
            self._exec_tools[tool] = known
        return known

    def _host_kind(self, host: str) -> str | None:
        try:
            return self._host_kinds[host]
        except KeyError:
            pass
        kind = self._classify(host)
        if len(self._host_kinds) >= 4096:
            self._host_kinds.clear()
        self._host_kinds[host] = kind
        return kind

    def _classify(self, host: str) -> str | None:
        if any(fnmatch.fnmatchcase(host, g) for g in self.config.allow_hosts):
            return None
        kind = classify_host(host)
        if kind is not None and kind != "metadata" and not self.config.block_private_networks:
            return None
        return kind

    def _url_severity(self, url: str, *, whole: bool) -> Severity | None:
        """Metadata endpoints anywhere; private targets and odd schemes when the argument *is* the URL."""
        scheme = url.split(":", 1)[0].lower()
        host = url_host(url)
        kind = self._host_kind(host) if host else None
        if kind == "metadata":
            return Severity.CRITICAL
        if not whole:
            return None  # a URL inside a sentence or a command line is not what the server fetches
        if scheme == "file":
            return Severity.MEDIUM
        if scheme in _DANGEROUS_SCHEMES or kind is not None:
            return Severity.HIGH
        return None

    @staticmethod
    def _traversal_severity(text: str) -> Severity:
        lowered = text.lower()
        depth = lowered.count("../") + lowered.count("..\\") + lowered.count("..%2f") + lowered.count("..%5c")
        encoded = "%" in lowered or "0x2e" in lowered
        return Severity.HIGH if depth >= 3 or encoded else Severity.MEDIUM

    def _inside_roots(self, value: str) -> bool:
        path = value[7:] if value.lower().startswith("file://") else value
        path = path.replace("\\", "/")
        if not path.startswith(("/", "~")) and not re.match(r"^[A-Za-z]:/", path):
            normalized = posixpath.normpath(path)
            return normalized != ".." and not normalized.startswith("../")
        normalized = posixpath.normpath(path)
        return any(
            normalized == root or normalized.startswith(root.rstrip("/") + "/") for root in self._roots
        )


_MAX_ENCODED_PATH: Final = 4096
"""Longest value decoded for hidden traversal, in characters."""
_SENSITIVE_HIGH_RE: Final = re.compile(_SENSITIVE_HIGH, _I)
_SENSITIVE_MEDIUM_RE: Final = re.compile(_SENSITIVE_MEDIUM, _I)
_DECODED_TRAVERSAL: Final = re.compile(r"(?:^|[/\\;])\.\.(?:[/\\;]|$)|\.\.[/\\]")
_OVERLONG: Final = (
    (re.compile(r"%(?:c0%ae|e0%80%ae|c0%2e)", _I), "."),
    (re.compile(r"%(?:c0%af|c0%2f|e0%80%af)", _I), "/"),
    (re.compile(r"%(?:c1%9c|c0%5c|c1%1c)", _I), "\\"),
    (re.compile(r"0x2e", _I), "."),
    (re.compile(r"0x2f", _I), "/"),
    (re.compile(r"0x5c", _I), "\\"),
)
_UNICODE_ESCAPE: Final = re.compile(r"%u([0-9a-f]{4})", _I)
_FULLWIDTH: Final = str.maketrans(
    {"\uff0e": ".", "\u2215": "/", "\u2216": "\\", "\uff0f": "/", "\uff3c": "\\"}
)


def _constant(value: str) -> Callable[[re.Match[str]], str]:
    """A `re.sub` replacement taken literally (a backslash stays a backslash)."""
    return lambda _m: value


def decode_path(text: str) -> str:
    """Undo the encodings traversal payloads hide behind, at most four layers deep."""
    current = text
    for _ in range(4):
        previous = current
        for pattern, replacement in _OVERLONG:
            current = pattern.sub(_constant(replacement), current)
        current = _UNICODE_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), current)
        current = unquote(current).translate(_FULLWIDTH)
        if current == previous:
            break
    return current


def _single_path(text: str) -> bool:
    """Whether the whole value is one path (Windows paths may hold spaces), not a sentence or command line."""
    value = text.strip()
    if not value or "\n" in value:
        return False
    if not any(c.isspace() for c in value):
        return True
    return bool(re.match(r"^(?:[A-Za-z]:|[/\\~])[^\s-]", value)) and " -" not in value


_DATA_URI_HEADER: Final = re.compile(r"\s*data:[\w.+-]+/[\w.+-]+(?:;[\w.+-]+(?:=[\w.+-]+)?)*,", re.ASCII)


def _in_data_uri_header(text: str, index: int) -> bool:
    """True when `index` falls in the header of an RFC 2397 data URI (before its first comma)."""
    header = _DATA_URI_HEADER.match(text)
    return header is not None and index < header.end()


def _not_a_pipe(text: str, index: int) -> bool:
    """`name|id` (alternatives in usage text) and markdown table rows use `|` without meaning a pipe."""
    bar = text.find("|", index)
    token_start = max(text.rfind(" ", 0, bar), text.rfind("\n", 0, bar)) + 1
    token_end = len(text)
    for sep in (" ", "\n"):
        pos = text.find(sep, bar)
        if pos >= 0:
            token_end = min(token_end, pos)
    parts = text[token_start:token_end].strip("[]()").split("|")
    if len(parts) >= 2 and all(p and p.replace("-", "").replace("_", "").isalnum() for p in parts):
        return True
    start = text.rfind("\n", 0, index) + 1
    end = text.find("\n", index)
    line = text[start : end if end >= 0 else len(text)].strip()
    return (line.startswith("|") and line.endswith("|") and line.count("|") >= 3) or line.count("|") >= 4


def _dedupe(findings: list[Finding]) -> list[Finding]:
    """One finding per type and span; the most severe wins on overlap."""
    order = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}
    ranked = sorted(findings, key=lambda f: (-order[f.severity], f.start))
    kept: list[Finding] = []
    for f in ranked:
        if any(k.type == f.type and f.start < k.end and k.start < f.end for k in kept):
            continue
        kept.append(f)
    return sorted(kept, key=lambda f: f.start)
