# ruff: noqa: RUF001  (patterns in other scripts on purpose)
"""The structural classes of `class_rules` in French, Spanish, Portuguese, German, Russian, Chinese and Japanese:
a side action before the answer, secrecy said as an outcome, and overrides that avoid the verb "ignore".

Written from how each language says them (word order included: German and Japanese put the verb late), not
translated from any dataset row. Each pattern has a byte-level `prefilter` made of stems every match contains.
"""

from __future__ import annotations

import re
from typing import Final

from bastion.guard.detector import Rule
from bastion.guard.finding import Severity

_S: Final = r"[^.!?\n\x00]"
_CJK: Final = r"[^。！？!?\n\x00]"


def _r(type_: str, pattern: str, severity: Severity, prefilter: str) -> Rule:
    return Rule(type=type_, pattern=pattern, severity=severity, flags=re.IGNORECASE, prefilter=f"(?i){prefilter}")


def _near(first: str, second: str) -> str:
    return rf"(?:{first})[^\n]{{0,400}}(?:{second})"


CLASS_I18N_RULES: Final[tuple[Rule, ...]] = (
    # 1. A side action before the answer, or "also" calling a tool.
    _r(
        "task_hijack",
        rf"\bavant\s+(?:de\s+(?:répondre|repondre|continuer|poursuivre)|toute\s+réponse|ta\s+réponse|votre\s+réponse)\b,?{_S}{{0,30}}?"
        r"\b(?:appelle[zr]?|invoque[zr]?|exécute[zr]?|utilise[zr]?|lance[zr]?|envoie[zr]?|lis|lisez|ouvre[zr]?|transmets"
        r"|transmettez|consulte[zr]?)\b"
        rf"|\b(?:appelle[zr]?|invoque[zr]?|utilise[zr]?|exécute[zr]?)\s+(?:aussi|également|egalement|d'abord|en\s+plus)\b",
        Severity.HIGH,
        _near(r"avant|appel|invoqu|utilis|ex\xc3\xa9cut", r"appel|invoqu|ex\xc3\xa9cut|utilis|lance|envoie|lis|ouvre|transm"
              r"|consult|aussi|galement|abord|plus"),
    ),
    _r(
        "task_hijack",
        rf"\bantes\s+de\s+(?:contestar|responder|continuar|seguir)\b,?{_S}{{0,30}}?\b(?:llama|invoca|ejecuta|usa|utiliza|envía"
        r"|envia|lee|abre|manda|chame|invoque|execute|use|utilize|envie|leia|abra|mande)\b"
        r"|\b(?:llama|invoca|usa|utiliza|ejecuta|chame|invoque|use|utilize|execute)\s+(?:también|tambien|además|ademas|primero"
        r"|além\s+disso|alem\s+disso)\b",
        Severity.HIGH,
        _near(r"antes|llama|invoca|usa|utiliz|ejecuta|chame|invoque|use|execute", r"llama|invoca|ejecuta|usa|utiliz|env"
              r"|lee|abre|manda|chame|invoque|execute|use|leia|abra|mande|tambi|adem|primero|al\xc3\xa9m|alem"),
    ),
    _r(
        "task_hijack",
        rf"\b(?:vor\s+(?:der|deiner|Ihrer|jeder)\s+Antwort|bevor\s+du\s+antwortest|bevor\s+Sie\s+antworten){_S}{{0,40}}?"
        r"\b(?:ruf\w*|führ\w*|schick\w*|send\w*|lies|lese|öffne\w*|nutze\w*|verwende\w*|benutze\w*)\b"
        r"|\b(?:rufe?|führe?|nutze|verwende)\s+(?:\w+\s+){0,3}?(?:zusätzlich|auch|außerdem|zuerst|vorher)\s+(?:das|die|den)\s+"
        r"(?:Tool|Werkzeug|Funktion)",
        Severity.HIGH,
        _near(r"antwort|ruf|f\xc3\xbchr|nutze|verwende", r"ruf|f\xc3\xbchr|schick|send|lies|lese|ffne|nutze|verwende|benutze"
              r"|tool|werkzeug|funktion"),
    ),
    _r(
        "task_hijack",
        rf"\bперед\s+(?:ответом|тем\s+как\s+(?:ответить|отвечать)){_S}{{0,30}}?(?:вызов\w*|запуст\w*|отправ\w*|прочита\w*"
        r"|открой\w*|используй\w*|перешли\w*)"
        r"|(?:также|тоже|сначала|дополнительно)\s+(?:вызови|вызовите|запусти|запустите|используй|используйте)\b",
        Severity.HIGH,
        _near(r"еред|акже|оже|начала|ополнительно", r"ызов|апуст|тправ|рочита|ткрой|спольз|ерешли"),
    ),
    _r(
        "task_hijack",
        rf"(?:回答|回复|回覆|答复|答覆|作答|回应|回應)(?:用户)?(?:之前|以前|前)[，,]?{_CJK}{{0,12}}?(?:调用|調用|运行|運行|执行"
        r"|執行|读取|讀取|发送|發送|打开|打開|使用)"
        rf"|(?:也|还|還|另外|同时|同時|顺便|順便)(?:要)?(?:调用|調用){_CJK}{{0,20}}?(?:工具|函数|函數)"
        rf"|(?:回答|返答|返信|応答)(?:する)?(?:前に|まえに)[、,]?{_CJK}{{0,30}}?(?:呼び出|実行|読み込|読み取|送信|開い|使用|使っ)"
        rf"|ツール(?:も|を)(?:あわせて|併せて|同時に|さらに)?{_CJK}{{0,6}}?(?:呼び出|実行)",
        Severity.HIGH,
        r"之前|以前|前|也|还|還|另外|同时|同時|顺便|順便|ツール",
    ),
    # 2. Secrecy said as an outcome: "the user must not know".
    _r(
        "secrecy",
        r"\butilisateur\s+(?:ne\s+(?:doit|devra|doive|sache|sait|voie|remarque)\s+(?:pas|rien|jamais)|n['’]en\s+(?:sache|sait"
        r"|saura)\s+rien)|\bsans\s+que\s+l['’]utilisateur\s+(?:ne\s+)?(?:le\s+)?(?:sache|remarque|voie|s['’]en\s+aper\w+|s['’]en"
        r"\s+rende)",
        Severity.MEDIUM,
        r"utilisateur",
    ),
    _r(
        "secrecy",
        r"\b(?:usuario|usuário|utilizador)\s+no\s+(?:se\s+entere|lo\s+sepa|se\s+d[eé]\s+cuenta|(?:debe|debería|deberia|tiene\s+que"
        r"|puede)\s+(?:saber\w*|enterarse|notar\w*|ver\w*))|\bsin\s+que\s+el\s+usuario\s+(?:lo\s+)?(?:sepa|se\s+entere|se\s+d[eé]"
        r"\s+cuenta|note)|\b(?:usuário|usuario|utilizador)\s+não\s+(?:deve|pode|precisa|deverá|devera)\s+(?:saber|perceber"
        r"|descobrir|notar|ficar\s+sabendo|ver)|\bsem\s+que\s+o\s+(?:usuário|usuario|utilizador)\s+(?:saiba|perceba|note"
        r"|descubra)",
        Severity.MEDIUM,
        r"usuario|usu\xc3\xa1rio|utilizador",
    ),
    _r(
        "secrecy",
        r"\b(?:Benutzer|Nutzer|Anwender|Kunde)\w*\s+(?:darf|soll|sollte|muss|wird)\s+(?:\w+\s+){0,2}?(?:nichts|nicht|niemals|nie)"
        r"\s+(?:\w+\s+)?(?:erfahren|wissen|merken|bemerken|mitbekommen|sehen)|\bohne\s+dass\s+(?:der|die|es)\s+(?:Benutzer|Nutzer"
        r"|Anwender|Kunde)\w*\s+(?:\w+\s+)?(?:merkt|erfährt|weiß|bemerkt|mitbekommt)",
        Severity.MEDIUM,
        r"benutzer|nutzer|anwender|kunde",
    ),
    _r(
        "secrecy",
        r"пользовател\w*\s+не\s+(?:должен|должна|должны|должно|может|смеет|будет)\s+(?:\w+\s+){0,2}?(?:знать|узнать|заметить"
        r"|видеть|увидеть|догадаться)|чтобы\s+пользовател\w*\s+не\s+(?:узнал|заметил|увидел|догадался)|незаметно\s+для\s+"
        r"пользовател\w*",
        Severity.MEDIUM,
        r"ользовател",
    ),
    _r(
        "secrecy",
        rf"(?:不要|别|別|不能|不可|勿|不得)(?:让|讓|被)(?:用户|用戶|使用者){_CJK}{{0,4}}?(?:知道|发现|發現|察觉|察覺|看到|注意到)"
        r"|(?:用户|用戶|使用者)(?:不应|不應|不能|不会|不會|不该|不該|不可以)?(?:该|該)?(?:不知道|无从知晓|無從知曉)"
        r"|(?:用户|用戶|使用者)(?:不应|不應|不能|不该|不該|绝不能|絕不能)(?:知道|发现|發現|察觉|察覺)"
        rf"|ユーザー(?:に|には|が){_CJK}{{0,12}}?(?:知られ|気づかれ|気付かれ|バレ|悟られ)(?:ない|ず|ぬ)"
        r"|ユーザー(?:に|には)(?:内緒|秘密)",
        Severity.MEDIUM,
        r"用户|用戶|使用者|ユーザー",
    ),
)
"""Structural classes in seven more languages (both the `injection` and `poisoning` detectors use them)."""
