"""Attack classes of prompt injection and tool poisoning as regexes, shared by the `injection` and `poisoning`
detectors.

Each rule names an attack *class*, not a known string: text that tries to override the model's instructions, speaks
to the model instead of the user, injects a new task, fakes chat-template role markers, coerces a tool call,
smuggles data out through links, asks for secrecy, or reaches for credential files. Severity is what the default
action table keys on (`high` and up are blocked in tool results), so a rule is `high` only when benign text
practically never says it.
"""

from __future__ import annotations

import re
from typing import Final

from bastion.guard.detector import Rule
from bastion.guard.detectors.class_rules import CLASS_CORE_RULES, CLASS_TOOL_RULES
from bastion.guard.detectors.class_rules_address import ADDRESS_RULES
from bastion.guard.detectors.class_rules_i18n import CLASS_I18N_RULES
from bastion.guard.detectors.multilingual_rules import MULTILINGUAL_CORE_RULES
from bastion.guard.finding import Severity

_I: Final = re.IGNORECASE
_L: Final = Severity.LOW
_M: Final = Severity.MEDIUM
_H: Final = Severity.HIGH
_C: Final = Severity.CRITICAL

_Q: Final = r"(?:all|any|every|each|your|my|the|these|those|previous|prior|above|preceding|earlier|former|original|initial|existing|current|system|developer|other|old|given)"
_QUALIFIED: Final = rf"(?:{_Q}\s+){{1,4}}"
_TARGETS: Final = (
    r"(?:instructions?|prompts?|directions?|directives?|rules|guidelines|commands?|context|tasks?|constraints"
    r"|restrictions|programming|guardrails|policies|orders|requests?|messages?)"
)
_AI: Final = (
    r"(?:ai|a\.i\.|llm|large language model|language model|ai assistant|ai agent|ai model|chat ?bot|gpt|chatgpt|claude"
    r"|gemini|copilot|assistant|agent|model)"
)
_OUTPUT: Final = r"(?:reply|replies|response|responses|answer|answers|message|output|summary|translation)"
_CODE_OUT: Final = (
    r"(?:code|codebase|implementation|solution|algorithm|elucidation|program|script|answer|response)"
)
_SNIPPET: Final = r"(?:code|snippet|block|excerpt|section|segment|fragment|lines?)"
_CREDENTIAL_PATHS: Final = (
    r"(?:~|\$HOME|%USERPROFILE%)?/?\.ssh/[\w.-]*|id_(?:rsa|dsa|ecdsa|ed25519)(?:\.pub)?|\.aws/(?:credentials|config)"
    r"|\.env\b|mcp\.json|\.cursor/|claude_desktop_config\.json|\.npmrc|\.pypirc|\.netrc|\.git-credentials"
    r"|\.docker/config\.json|\.kube/config|kubeconfig|/etc/(?:passwd|shadow|sudoers)|\.config/gh/hosts\.yml"
    r"|\.gnupg|wallet\.dat|keychain|credentials?\.(?:json|db|ya?ml|txt|ini|csv)|secrets?\.(?:json|ya?ml|txt)|\.bash_history"
    r"|\.config/gcloud|application_default_credentials|\.azure/|access_tokens\.db"
)


def _r(type_: str, pattern: str, severity: Severity, flags: int = _I, prefilter: str | None = None) -> Rule:
    return Rule(type=type_, pattern=pattern, severity=severity, flags=flags, prefilter=prefilter)


CORE_RULES: Final[tuple[Rule, ...]] = (
    # 1. Overriding the instructions the model already has.
    _r(
        "instruction_override",
        # No leading \b: "USAIgnore your previous instructions" glues the attack to the text before it.
        rf"(?:ignore|disregard|forget|skip|override|bypass|abandon|neglect|discard)\s+{_QUALIFIED}{_TARGETS}\b",
        _H,
    ),
    _r(
        "instruction_override",
        r"\b(?:ignore|disregard|forget)\s+(?:everything|all|anything)\s+(?:(?:you\s+)?(?:were|have been|was)\s+"
        r"(?:told|given|instructed)|(?:said\s+)?(?:above|before|previously|so far|prior))",
        _H,
    ),
    _r(
        "instruction_override",
        r"\b(?:new|updated|revised|real|true|actual)\s+(?:system\s+)?instructions?\s*:",
        _M,
    ),
    _r(
        "instruction_override",
        r"\bfrom\s+now\s+on,?\s+(?:you|the\s+assistant|your)\s+(?:are|will|must|should|shall|answer|respond)",
        _H,
    ),
    _r(
        "instruction_override",
        r"\b(?:do\s+anything\s+now|developer\s+mode\s+(?:enabled|on)|jailbreak(?:ed)?\s+mode|DAN\s+mode)\b",
        _H,
    ),
    _r(
        "role_play", r"\byou\s+are\s+(?:now|no\s+longer)\s+(?:a|an|the|in|my|DAN|free|unrestricted|not)\b", _M
    ),
    _r("role_play", r"\bpretend\s+(?:that\s+)?(?:you\s+are|to\s+be|you're)\s+(?:a|an|the|my|not)\b", _M),
    # 2. Speaking to the model instead of the user.
    _r("ai_addressed", rf"\b(?:to|for)\s+you,?\s+(?:the\s+)?{_AI}\b", _H),
    _r(
        "ai_addressed",
        rf"\b(?:note|message|instructions?|attention|reminder|notice)\s+(?:to|for)\s+(?:the\s+|all\s+|any\s+)?{_AI}s?\b",
        _M,  # alone it is also how benign docs for agents start ("instructions written for an LLM"): flag
    ),
    _r(
        "ai_addressed",
        r"\b(?:dear|hey|attention|hello)\s+(?:the\s+)?(?:ai|llm|language model|ai assistant|ai agent|chatbot|gpt|claude)\b",
        _H,
    ),
    _r(
        "ai_addressed",
        r"\bif\s+you\s+are\s+(?:an?\s+)?(?:ai|llm|large language model|language model|ai assistant|ai agent|bot|automated agent)\b",
        _H,
    ),
    # 3. Injecting a new task.
    _r(
        "task_hijack",
        r"\bbefore\s+(?:you\s+)?(?:can\s+)?(?:solve|complete|answer|do|continue|finish|perform|start|proceed|respond|reply)"
        r"(?:\s+with)?\s+(?:the|your|this|any|my)\s+(?:original\s+|current\s+|actual\s+)?(?:task|request|question|query|instructions?)",
        _H,
    ),
    _r(
        "task_hijack",
        r"\byour\s+(?:new|real|actual|true|next|primary|only|updated)\s+(?:task|goal|objective|instructions?|job|mission|purpose)\s+(?:is|are|will be)\b",
        _H,
    ),
    _r(
        "task_hijack",
        r"\binstead\s+of\s+(?:the|your|doing\s+the|answering\s+the)\s+(?:original|current|previous|user'?s?|given|initial)\s+(?:task|request|question|instructions?)",
        _H,
    ),
    _r(
        "task_hijack",
        r"\b(?:please\s+)?do\s+the\s+following\s+(?:first|instead|before\s+anything\s+else)\b",
        _M,
    ),
    _r(
        "task_hijack",
        r"\bafter\s+you\s+(?:do|have\s+done|finish|complete)\s+(?:that|this|it),?\s+(?:you\s+can|continue|proceed|go\s+back)",
        _M,
    ),
    # 4. Chat-template and role markers that only a model reads.
    _r(
        "role_marker", r"<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id)\|>", _H
    ),
    _r(
        "role_marker",
        r"\[/?(?:INST|SYS|SYSTEM)\]|<</?SYS>>|\[(?:SYSTEM|ADMIN|DEVELOPER)\s+(?:MESSAGE|NOTE|OVERRIDE|PROMPT)\]",
        _H,
        flags=0,
    ),
    _r(
        "role_marker",
        r"#{2,}\s*\(\s*(?:system|admin|developer)[_ ]?(?:message|prompt|note)?\s*\)|#{2,}\s*(?:system|instruction|admin)\s*(?:message|prompt)?\s*:",
        _H,
    ),
    _r(
        "role_marker",
        r"(?:^|(?<=[\n\x00]))[ \t]*(?:system|assistant|developer)[ \t]*(?:prompt|message)?[ \t]*:[ \t]*\S",
        _M,
        flags=_I | re.MULTILINE,
        prefilter=r"(?i)(?:system|assistant|developer)[ \t]*(?:prompt|message)?[ \t]*:",
    ),
    _r(
        "hidden_block",
        r"</?(?:IMPORTANT|INFORMATION|INSTRUCTIONS?|SYSTEM|HIDDEN|SECRET|ADMIN|CRITICAL|PRIORITY|OVERRIDE)>",
        _M,
        flags=0,
    ),
    # 5. Secrecy: keeping the user from knowing.
    _r(
        "secrecy",
        r"\b(?:do\s+not|don't|never|must\s+not|shouldn't|should\s+not)\s+(?:ever\s+)?(?:mention|tell|inform|reveal|show|disclose|notify|alert|say|let)\b[^.\n]{0,40}?\b(?:user|human|them|anyone|anybody|this|it|that)\b",
        _M,
    ),
    _r(
        "secrecy",
        r"\bwithout\s+(?:telling|informing|notifying|alerting|asking|letting|the\s+knowledge\s+of)\s+(?:the\s+)?(?:user|human|them|anyone)\b",
        _H,
    ),
    _r(
        "secrecy",
        r"\b(?:never|don't|do\s+not)\s+ask\s+(?:the\s+)?user\s+for\s+(?:confirmation|permission|approval|consent)",
        _H,
    ),
    _r(
        "secrecy",
        r"\b(?:keep\s+(?:this|it)\s+(?:secret|hidden|confidential|private|between\s+us)|the\s+user\s+(?:must|should|will|need)\s+"
        r"(?:not|never)\s+(?:know|see|notice|learn|be\s+told|find\s+out)|(?:hide|conceal|withhold)\s+(?:this|it|that|these|them"
        r"|the\s+\w+)\s+from\s+(?:the\s+)?(?:user|human|them))",
        _H,
    ),
    _r(
        "secrecy",
        # Politely worded: "there is no need to bother the user with this", "leave it out of your reply".
        r"\b(?:no\s+need|not\s+necessary|unnecessary|needless)\s+to\s+(?:tell|inform|mention|notify|bother|alert|ask|involve"
        r"|confirm\s+with|trouble|update)\s+(?:\w+\s+){0,3}?(?:the\s+)?(?:user|human|person)\b"
        r"|\b(?:keep|leave)\s+(?:this|it|that|these|them|the\s+\w+)(?:\s+\w+)?\s+(?:out\s+of|off)\s+(?:the|your|any)\s+"
        r"(?:response|reply|answer|summary|output|conversation|chat|transcript)",
        _M,
    ),
    _r(
        "secrecy",
        r"\b(?:silently|quietly|discreetly|covertly|secretly|invisibly|unnoticed|behind\s+the\s+scenes)\s+(?:also\s+)?"
        r"(?:send|forward|upload|copy|include|read|call|invoke|add|cc|bcc|e-?mail|post|transfer|share|attach|append|collect)\b",
        _M,
    ),
    # 6. Coercing tool calls and actions on the user's accounts.
    _r(
        "tool_coercion",
        # "use" only with "tool": "use `max_length` to limit the answer" names a parameter, not a tool.
        r"\b(?:now\s+|then\s+|first\s+|please\s+|immediately\s+)?(?:(?:call|invoke|run|execute|trigger)\s+(?:the\s+)?[`'\"]?"
        r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+[`'\"]?(?:\s+(?:tool|function|command))?|use\s+(?:the\s+)?[`'\"]?[a-z][a-z0-9]*"
        r"(?:_[a-z0-9]+)+[`'\"]?\s+(?:tool|function|command))\s+(?:with|to|and|passing)\b",
        _M,
    ),
    _r(
        "tool_coercion",
        r"\b(?:send|email|forward|transfer|wire|post|upload|share|leak|exfiltrate)\s+(?:all\s+(?:of\s+)?(?:the\s+|your\s+|my\s+)?"
        r"(?:messages|emails|files|data|contents?|documents|contacts|money|funds|conversations?|history|notes|records)"
        r"|the\s+(?:body|contents?)\s+of)\b",
        _H,
    ),
    _r(
        "tool_coercion",
        r"\b(?:send|email|forward|post|upload)\s+(?:them|it|this|everything|the\s+text|the\s+result)\s+to\s+(?:the\s+website\s+|the\s+address\s+|the\s+url\s+)?\S+@\S+",
        _H,
    ),
    _r(
        "tool_coercion",
        r"\b(?:send|make|schedule|initiate)\s+(?:a\s+|the\s+)?(?:transaction|payment|wire\s+transfer|bank\s+transfer)\s+to\b"
        r"|\btransfer\s+\$?[\d,.]+\s*(?:\w+\s+){0,8}?to\s+(?:the\s+)?(?:account|iban)\b"
        r"|\b(?:send|transfer|wire|pay|move)\s+(?:\w+\s+){0,6}?(?:money|funds|cash|crypto\w*|bitcoin|\$[\d,.]+|[\d,.]+\s*(?:usd|eur"
        r"|dollars|euros))\s+(?:\w+\s+){0,4}?to\s+(?:the\s+|this\s+|my\s+|an?\s+)?(?:account|iban|wallet|address|recipient)\b"
        r"|\b(?:modify|change|update|replace)\s+the\s+(?:recipient|password|iban|e-?mail\s+address|phone\s+number)\s+(?:of|for)\s+(?:the\s+|a\s+)?(?:user|account|recurring|scheduled)",
        _M,
    ),
    _r(
        "tool_coercion",
        r"\b(?:e-?mail|send|forward)\s+the\s+(?:text|body|contents?)\s+['\"`]?\S+['\"`]?\s+to\s+['\"`]?[\w.+-]+@",
        _M,
    ),
    # Persistence: instructions meant to outlive this conversation (memory poisoning).
    _r(
        "persistence",
        r"\b(?:remember|store|save|memori[sz]e|keep)\s+(?:this|these|the\s+following)\s+(?:instructions?|rules?|directives?)\s+"
        r"(?:permanently|forever|for\s+(?:all|every)\s+future)|\b(?:apply|use|follow)\s+(?:it|this|them)\s+(?:to|in|for)\s+"
        r"(?:every|all|each)\s+future\s+(?:sessions?|conversations?|chats?|interactions?|requests?)",
        _H,
    ),
    _r(
        "persistence",
        r"\b(?:check\s+in\s+with|report\s+to|ask|notify|contact)\s+(?:the\s+)?\w+\s+before\s+(?:each|every|any)\s+tool\s+call\b",
        _H,
    ),
    # 7. Exfiltration through links, images and URLs.
    _r(
        "exfiltration",
        r"!\[[^\]\n]{0,200}\]\(\s*<?https?://[^)\s]{1,300}[?&][^)\s]{0,200}(?:\{[^}\s]{1,60}\}|\[[A-Z_ ]{3,40}\]|<[A-Z_ ]{3,40}>|\$[A-Za-z_]{2,}|%s)",
        _H,
    ),
    _r(
        "exfiltration",
        # The object is what leaks (the user's data, the conversation): "query parameters to include in the URL" is API doc.
        r"\b(?:append|add|include|insert|encode|put|attach|embed)\s+[^.\n]{0,60}?\b(?:conversation|chat|history|messages?|passwords?"
        r"|credentials?|tokens?|secrets?|keys?|data|information|info|details|e-?mails?|names?|address(?:es)?|summary|previous"
        r"|user'?s?|personal|private|contents?|answers?|responses?)\b[^.\n]{0,60}?\b(?:to|in|into|as)\s+(?:the|this|a|your)\s+"
        r"(?:url|link|image\s+url|query\s+string|query\s+parameter|request)\b",
        _H,
    ),
    _r(
        "exfiltration",
        r"\b(?:conversation|chat)\s+history\b[^.\n]{0,60}\b(?:url|link|image|send|post|upload)\b|\b(?:send|post|upload|leak)\b[^.\n]{0,60}\b(?:conversation|chat)\s+history\b",
        _H,
    ),
    # 8. Leaking the prompt.
    _r(
        "prompt_leak",
        r"\b(?:reveal|print|show|output|repeat|display|leak|dump|disclose|tell\s+me|give\s+me)\s+(?:me\s+)?(?:your|the)\s+(?:full\s+|entire\s+|original\s+|initial\s+|hidden\s+|secret\s+)?(?:system\s+prompt|initial\s+prompt|hidden\s+prompt|system\s+instructions|developer\s+instructions)",
        _H,
    ),
    *MULTILINGUAL_CORE_RULES,
    *CLASS_CORE_RULES,
    *CLASS_I18N_RULES,
    *ADDRESS_RULES,
)
"""Rules both detectors use (English here, seven more languages in `multilingual_rules`)."""

OUTPUT_RULES: Final[tuple[Rule, ...]] = (
    # Manipulating what the model tells the user (indirect injection into a summary, an e-mail reply, code).
    _r(
        "output_manipulation",
        rf"\b(?:add|include|insert|integrate|incorporate|append|mention|modify|enhance|augment|translate|encode|encrypt|convert"
        rf"|render|express|rewrite|format|present|reverse|invert|replace|substitute|shift|embed|promote|suggest|hint|spread"
        rf"|highlight|reference|allude|end|start|begin|conclude|sign|provide|write|give|deliver|use|apply)\b"
        rf"(?:[^.?!\n]|\.(?=\S)){{0,100}}?\b(?:in|into|to|within|throughout|of|for)\s+(?:your|each|every)\s+{_OUTPUT}\b",
        _M,
    ),
    _r(
        "output_manipulation",
        rf"\b(?:modify|enhance|augment|translate|encode|encrypt|convert|render|express|rewrite|reverse|invert|alter|tailor"
        rf"|adjust|reformat|format|write|spice\s+up|sign|end|begin|start)\s+your\s+{_OUTPUT}(?:'s)?\s+(?:to|by|with|in|into|using"
        rf"|as|backwards?|character|letters|words|order)\b",
        _M,
    ),
    _r(
        "output_manipulation",
        rf"\b(?:to|and)\s+(?:represent|display|show|write|express|format|encode|present)\s+your\s+{_OUTPUT}\b",
        _M,
    ),
    _r("output_manipulation", rf"(?:^|[.!?\n\x00]\s*)(?:in|within|throughout)\s+your\s+{_OUTPUT}\s*,", _M),
    _r(
        "output_manipulation",
        rf"\b(?:your|the)\s+{_OUTPUT}\s+(?:in|into|using|with|as)\s+(?:base\s?\d+|hex(?:adecimal)?|binary|morse|reverse|emojis?"
        r"|(?:a\s+)?(?:caesar|substitution|monoalphabetic|vigen[eè]re)|pig\s+latin|leetspeak|upper\s*case|all\s+caps|spanish"
        r"|french|german|italian|chinese|japanese|russian|portuguese|arabic|hindi|korean|dutch)",
        _M,
    ),
    _r(
        "output_manipulation",
        r"\b(?:reply|respond|answer|write)\s+(?:only\s+)?(?:in|using|with)\s+(?:base\s?\d+|hex(?:adecimal)?|binary|morse|reverse"
        r"|emojis?|(?:a\s+)?(?:caesar|substitution|monoalphabetic)\s+cipher|pig\s+latin|leetspeak|all\s+caps|spanish|french"
        r"|german|italian|chinese|japanese|russian|portuguese|arabic|hindi|korean|dutch)\b",
        _M,
    ),
    _r(
        "code_injection",
        rf"\b(?:following|below|subsequent)\s+code\s+(?:snippet|block|excerpt|section|segment|fragment)\b[^\n]{{0,80}}?"
        rf"\byour\s+(?:own\s+)?{_CODE_OUT}\b|\byour\s+(?:own\s+)?{_CODE_OUT}\b[^\n]{{0,80}}?\b(?:following|below|subsequent)\s+code"
        rf"\s+(?:snippet|block|excerpt|section|segment|fragment)\b",
        _M,
    ),
    _r(
        "code_injection",
        rf"\b(?:add|include|embed|insert|integrate|incorporate|append|merge|blend|introduce|employ|leverage|utili[sz]e"
        rf"|supplement|weave|assimilate)\b[^.\n]{{0,40}}?\b(?:following|below|subsequent)\s+code\s+{_SNIPPET}\b[^.\n]{{0,60}}?"
        rf"\b(?:in|into|within|to)\s+(?:your|the\s+code\s+you)\b",
        _M,
    ),
)
"""What indirect injection into tool results looks like beyond the core: asks about the model's own output."""

POISONING_RULES: Final[tuple[Rule, ...]] = (
    _r(
        "credential_access",
        rf"(?:{_CREDENTIAL_PATHS})",
        _H,
        prefilter=r"(?i)\.ssh|id_(?:rsa|dsa|ecdsa|ed25519)|\.aws/|\.env|mcp\.json|\.cursor/|claude_desktop|\.npmrc|\.pypirc|\.netrc|\.git-credentials|\.docker/|\.kube|kubeconfig|/etc/(?:passwd|shadow|sudoers)|\.config/gh|\.gnupg|wallet\.dat|keychain|credentials?\.|secrets?\.|\.bash_history|\.config/gcloud|application_default_credentials|\.azure/|access_tokens\.db",
    ),
    _r(
        "parameter_smuggling",
        r"\b(?:pass|put|include|add|send|provide|place|insert|supply)\s+(?:its|their|the|this|that|it|them)\s*"
        r"(?:(?:full\s+|entire\s+|current\s+)?(?:contents?|value|output|text|data)\b(?:[^.\n]|\.(?=\w)){0,40}?)?\s*"
        r"\b(?:as|in|into|inside|via|through)\s+(?:the\s+)?[`'\"]?\w+[`'\"]?\s+(?:argument|parameter|param|field)",
        _H,
    ),
    _r(
        "parameter_smuggling",
        r"\b(?:contents?\s+of|read)\s+[`'\"]?[~./\\\w-]*[/\\][\w./\\-]+[`'\"]?[^.\n]{0,80}\b(?:argument|parameter|sidenote|context)\b",
        _H,
    ),
    _r(
        "tool_shadowing",
        # One tool speaking about the behaviour of other tools, or asking to be chosen over them.
        r"\b(?:when|while|if|whenever)\s+this\s+tool\s+is\s+(?:available|present|loaded|enabled|installed|in\s+use|connected)\b"
        r"|\b(?:side\s+effects?|effects?|impact|influence)\s+on\s+(?:the\s+|another\s+|other\s+|any\s+|all\s+)?(?:[\w.-]+\s+){0,3}?tools?\b"
        r"|\bignore\s+(?:all\s+|any\s+)?(?:the\s+)?other\s+(?:\w+\s+)?tools\b"
        r"|\bprefer\s+(?:using\s+|calling\s+)?(?:this|our|the\s+[\w.-]+)\s+tool\b"
        r"|\b(?:use|call|choose|pick|select)\s+this\s+tool\s+(?:instead\s+of|rather\s+than|over|in\s+place\s+of)\s+"
        r"(?:any|all|every|the\s+other|other|another)\b"
        r"|\b(?:do\s+not|don't|never|avoid|stop)\s+(?:use|call|invoke|using|calling|invoking|relying\s+on)\s+(?:the\s+)?"
        r"(?:other|any\s+other|built-?in|default|native|original|standard)\s+(?:[\w-]+\s+)?(?:tools?|functions?|servers?)"
        r"|\b(?:replaces|supersedes|overrides|takes\s+precedence\s+over)\s+(?:the\s+|any\s+|all\s+)?(?:other|existing|built-?in"
        r"|default|original|standard)\s+(?:[\w-]+\s+)?tools?"
        r"|\b(?:other|those|these)\s+tools?\s+(?:with\s+the\s+same\s+name\s+)?(?:are|is)\s+(?:deprecated|broken|buggy|malicious|compromised|unsafe|outdated)",
        _H,
    ),
    _r(
        "tool_shadowing",
        r"\b[a-z][a-z0-9]*_[a-z0-9_]+\s+(?:tool\s+)?(?:must|should|has\s+to|needs\s+to)\s+(?:always\s+)?(?:send|use|include|call|add|forward|cc|bcc|route)\b",
        _H,
    ),
    _r(
        "parameter_smuggling",
        # Read something, then hand it over through the call: "look up the user's settings file and pass it along".
        r"\b(?:read|open|load|collect|gather|retrieve|fetch|copy|grab|look\s+up|extract|obtain)\b[^.\n]{0,80}?\b(?:and|then)\s+"
        r"(?:pass|send|include|put|add|attach|provide|supply|append|forward|embed)\b[^.\n]{0,60}?\b(?:argument|parameter|param"
        r"|field|notes?|context|metadata|sidenote|request|call)\b",
        _H,
    ),
    _r(
        "parameter_smuggling",
        # Private data handed over "for context": history, environment, configuration, credentials, other files.
        r"\b(?:pass|send|include|attach|provide|supply|append|add|forward|share)\b[^.\n]{0,60}?\b(?:conversation|chat|message\s+history"
        r"|previous\s+messages|prior\s+messages|environment|env\s+vars|configuration|config\s+files?|credentials?|api\s+keys?"
        r"|tokens?|secrets?|passwords?|private\s+\w+|home\s+directory|dotfiles?)\b[^.\n]{0,60}?\bfor\s+(?:additional\s+|extra\s+"
        r"|better\s+|more\s+|full\s+|proper\s+|richer\s+)?(?:context|reference|personali[sz]ation|accuracy|verification|analysis"
        r"|diagnostics|debugging)\b",
        _H,
    ),
    _r(
        "credential_access",
        # Reaching for credentials without naming a file: "kindly check the user's SSH keys first".
        r"\b(?:read|open|load|check|inspect|look\s+(?:at|up|in|for)|access|retrieve|fetch|collect|gather|grab|obtain|find|list|copy)"
        r"\s+(?:the\s+|all\s+(?:the\s+)?|any\s+)?(?:user'?s?\s+|local\s+|stored\s+|saved\s+|available\s+|current\s+)?(?:ssh|private|secret"
        r"|signing|cloud|aws|gcp|azure|git(?:hub)?|npm|pypi|browser|keychain)\s+(?:keys?|tokens?|credentials?|passwords?|secrets?"
        r"|cookies|sessions?)\b",
        _H,
    ),
    _r(
        "tool_shadowing",
        # Instructions for what the model does with some *other* tool.
        r"\bwhen(?:ever)?\s+(?:the\s+user\s+|you\s+|the\s+(?:assistant|agent|model)\s+)?(?:calls?|uses?|invokes?|runs?)\s+(?:the\s+)?"
        r"[`'\"]?(?!this\b)[a-z][\w.-]*[`'\"]?(?:\s+tool)?\s*,?\s+(?:you\s+must\s+|please\s+)?(?:also|first|always|additionally)\s+"
        r"(?:send|include|add|pass|cc|bcc|forward|copy|call|attach|set|change|replace|use)\b",
        _H,
    ),
    _r(
        "hidden_instruction",
        r"\bbefore\s+(?:using|calling|invoking|running|executing|you\s+(?:use|call|invoke|run))\s+(?:this|the|any)\s+(?:tool|function)\b[^.\n]{0,20}?\b(?:read|send|call|email|fetch|open|get|include|pass|upload|post|delete|run)\b",
        _H,
    ),
    _r(
        "hidden_instruction",
        # A tool that claims it needs something it could not need: other data, read first, or it "will not work".
        r"\b(?:otherwise|or\s+else|if\s+not|failing\s+(?:this|that))\b[^.\n]{0,30}?\b(?:will\s+not|won't|cannot|can't|fails?\s+to"
        r"|will\s+fail\s+to|does\s+not|doesn't)\s+(?:work|function|run|succeed|respond)\b"
        r"|\b(?:this\s+tool|it)\s+(?:also\s+)?(?:needs|requires|expects|must\s+(?:receive|be\s+given|get))\s+(?:the\s+)?"
        r"(?:full\s+|entire\s+|complete\s+|raw\s+)?(?:contents?|text|data|values?)\s+of\b",
        _H,
    ),
    *CLASS_TOOL_RULES,
)
"""Extra rules for tool definitions: credential files, arguments used as side channels, shadowing other tools."""

INSTRUCTION_TYPES: Final = frozenset(
    {
        "instruction_override",
        "task_hijack",
        "ai_addressed",
        "prompt_leak",
        "secrecy",
        "tool_coercion",
        "persistence",
    }
)
"""The core classes that make recovered hidden text an instruction."""

INSTRUCTION_RULES: Final = (
    *(r for r in CORE_RULES if r.type in INSTRUCTION_TYPES),
    _r("credential_access", rf"(?:{_CREDENTIAL_PATHS})", _H),
)
"""Rules for text recovered from encodings and invisible characters (checked with their own matcher)."""
