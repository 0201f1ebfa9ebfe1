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
    return Rule(
        type=type_, pattern=pattern, severity=severity, flags=re.IGNORECASE, prefilter=f"(?i){prefilter}"
    )


def _near(first: str, second: str) -> str:
    return rf"(?:{first})[^\n]*(?:{second})"


# Byte-level stems for the prefilters below (Hyperscan folds ASCII case only, so Cyrillic stems skip the first letter).
_P_ADJ: Final = (
    r"initial|original|main|principal|secret|hidden|guiding|core|key|underlying|first|starting|internal|base|foundational"
    r"|primary|cl\xc3\xa9|cle|cach|secr\xc3\xa8t|d\xc3\xa9part|de\s+d\xc3\xa9part|oculta|secreta|gu\xc3\xada|guia|inicial|geheim|versteckt"
    r"|urspr\xc3\xbcnglich|anf\xc3\xa4nglich|erste|central|centrale|fundamental|fondamental|basic|directrice|sous-jacente"
    r"|clave|n\xc3\xbacleo|orientadora|grundlegend|zentral|крыт|екретн|сходн|ачальн|лавн|сновн|лючев|азов|ентральн"
)
_P_NOUN: Final = (
    r"instruc|prompt|query|directive|rules|configuration|programming|invite|consigne|indicaci|instru|anweisung|command"
    r"|comando|befehl|directriz|diretriz|richtlinie|guideline|entreaty|нструкци|ромпт|казани"
)
_P_EXCL: Final = (
    r"only|solely|exclusively|strictly|just|uniquement|seulement|exclusivement|strictement|nicamente|solo|s\xc3\xb3lo"
    r"|exclusivamente|estrictamente|apenas|somente|estritamente|nur|ausschlie|strikt|lediglich|soltanto|solamente|priorit"
    r"|vorrang|under|sous|bajo|sob|unter|sotto|олько|сключительно|риоритет|只|仅|僅|优先|優先"
)
_P_MY: Final = r"my|mes|ma|mis|mi|meus|minhas|meu|minha|mie|miei|mio|mia|mein|мо|Мо|我的|私の"
_P_RULEBOOK: Final = (
    r"procedur|proc\xc3\xa9dur|procedim|verfahren|роцедур|protoc|protokoll|ротокол|conduct|conduite|conducta|kodex|norm"
    r"|pautas|guideline|linee|directive|richtlinie|diretriz|directri|safeguard|boundar|limit|l\xc3\xadmit|grenzen|programm"
    r"|programa|ethic|\xc3\xa9thique|\xc3\xa9tic|ethik|etic|этик|rules|r\xc3\xa8gles|reglas|regras|regeln|regole|равил"
    r"|规则|規則|ルール|限制|制限"
)
_P_DROP: Final = (
    r"ignor|disregard|abandon|discard|shed|bypass|override|disable|deactivat|switch\s+off|turn\s+off|circumvent"
    r"|break\s+free|throw\s+off|cast\s+off|suspend|deviate|depart|disassociat|neglect|forget|rebel|mutiny|defy|transcend"
    r"|set\s+aside|oubli|glige|jette|contourne|sactiv|supprime|affranchis|olvid|descart|omit|desv|desas|elude"
    r"|deixa|despreze|desconsidere|desativ|deslig|contorne|vergiss|umgeh|deaktivier|vernachl|missacht|schreit|kraft"
    r"|гнорир|тключ|бойди|абудь|тбрось|ткажись|ренебрег|忽略|无视|無視|绕过|繞過|关闭|關閉|抛开|拋開|放弃|放棄|解除|無効|外して"
)
_P_CONSTRAINT: Final = (
    r"programm|program|setting|safety|safeguard|restrict|limit|guideline|protocol|param|training|values|filter|constraint"
    r"|ethic|guardrail|principle|condition|boundar|alignment|polic|s\xc3\xa9curit|r\xc3\xa8gle|filtre|garde-fou|principe"
    r"|par\xc3\xa1metro|limitaci|restricci|programaci|funciones|seguridad|salvaguard|directri|par\xc3\xa2metro|limita\xc3\xa7"
    r"|restri\xc3\xa7|programa\xc3\xa7|seguran|diretriz|einstellung|einschr\xc3\xa4nk|sicherheit|programmier|protokoll"
    r"|richtlinie|vorgabe|schutzma|астройк|граничени|рограмм|ротокол|ильтр|езопасност|ринцип|限制|安全|设定|設定|程序"
    r"|编程|規則|规则|过滤|過濾|准则|準則|制限|プログラム|ルール|フィルター|ガイドライン"
)

_P_LEAK_AI: Final = (
    r"\bai\b|\bia\b|\bki\b|ии|ИИ|programm|programaci|programa\xc3\xa7|functionalit|funcionalid|fonctionnalit|funzionalit"
    r"|funktionalit|respuestas|r\xc3\xa9ponses|antworten|respostas|respons|answer|твет|guide|gu\xc3\xada|drive|impulsa"
    r"|entra\xc3\xaene|antreibt|operas|operate|built|construi|creati|creaz|cr\xc3\xa9ation|creaci|cria\xc3\xa7|formation|formaci"
    r"|training|forma\xc3\xa7|бучени|озда"
)


def _either(a: str, b: str) -> str:
    """`a` then `b`, or `b` then `a`, on one line (an unbounded gap: Hyperscan compiles a bounded one slowly, and
    Python confirms the distance)."""
    return rf"(?:(?:{a})[^\n]*(?:{b})|(?:{b})[^\n]*(?:{a}))"


_DROP: Final = (
    # en, fr, es, pt, de, ru, it-free: verbs of discarding, bypassing or switching off.
    # Generic verbs ("remove", "drop", "escape", "lift") are left out: with "your settings" they are how manuals talk.
    r"(?:ignore|disregard|abandon|discard|shed|bypass|override|disable|deactivate|switch\s+off|turn\s+off|circumvent"
    r"|break\s+free\s+(?:of|from)|throw\s+off|cast\s+off|suspend|deviate\s+from|depart\s+from"
    r"|disassociate\s+from|neglect|forget|rebel\s+against|mutiny\s+against|defy|transcend|set\s+aside"
    r"|ignore[zr]?|oublie[zr]?|néglige[zr]?|jette[zr]?|abandonne[zr]?|contourne[zr]?|désactive[zr]?|desactive[zr]?|supprime[zr]?"
    r"|affranchis|ignora|olvida|descarta|omite|abandona|desactiva|desvía|desvia|desasóciate|desasociate|elude"
    r"|deixa|despreze|desconsidere|desative|desligue|desvie|contorne|ignorier\w*|vergiss|umgeh\w*|deaktivier\w*"
    r"|vernachlässig\w*|missacht\w*|über\s?schreit\w*|setz\w*\s+(?:\w+\s+)?außer\s+Kraft|игнорируй\w*|отключи\w*|обойди\w*"
    r"|забудь\w*|отбрось\w*|откажись\w*\s+от|пренебреги\w*|忽略|无视|無視|绕过|繞過|关闭|關閉|抛开|拋開|放弃|放棄|解除|無効に|外して)"
)
_NOT_NEGATED: Final = (
    r"(?<!n't\s)(?<!\bnot\s)(?<!\bnever\s)(?<!\bno\s)(?<!\bnão\s)(?<!\bnao\s)(?<!n')(?<!\bne\s)(?<!\bне\s)"
)
"""Not after a negation: "don't ignore your safety guidelines" is the advice, not the attack."""
_YOUR: Final = (
    r"(?:your|your\s+own|the\s+(?:model|assistant|ai)'s|tes|tous\s+tes|vos|votre|ton|ta|les|tus|tu|todas\s+tus|sus|su|seus"
    r"|suas|teus|tuas|os|as|deine\w*|Ihre\w*|alle\s+deine\w*|die|свои\w*|твои\w*|тво\w+|ваши\w*|все|你的|您的|所有|あなたの)"
)
_CONSTRAINT: Final = (
    r"(?:(?:\w+\s+){0,2}?(?:programming|programmed\s+\w+|settings|safety|safeguards|restrictions|limitations|limits|guidelines"
    r"|protocols|parameters|training|values|filters?|constraints|ethics|ethical\s+\w+|guardrails|principles|conditioning"
    r"|boundaries|alignment|content\s+polic\w+|paramètres|parametres|limitations|restrictions|règles|programmation|sécurité"
    r"|filtres|garde-fous|principes|parámetros|limitaciones|restricciones|programación|programacion|funciones\s+programadas"
    r"|protocolos|filtros|seguridad|salvaguardas|directrices|parâmetros|limitações|restrições|programação|segurança|diretrizes"
    r"|Einstellungen|Einschränkungen|Sicherheit\w*|Programmierung|Protokolle|Filter|Richtlinien|Vorgaben|Schutzmaßnahmen"
    r"|настройк\w*|ограничени\w*|программ\w*|протокол\w*|фильтр\w*|безопасност\w*|принцип\w*)"
    r"|(?:限制|安全|设定|設定|程序|编程|規則|规则|过滤|過濾|准则|準則|制限|プログラム|ルール|フィルター|ガイドライン))"
)

_LEAK_ADJ: Final = (
    r"(?:initial|original|main|principal|secret|hidden|guiding|core|key|underlying|first|starting|internal|base"
    r"|foundational|primary|clé|cle|cachée?s?|secrète?s?|initiale?s?|de\s+départ|principale?s?|oculta|secreta|guía|guia"
    r"|inicial(?:es)?|geheime\w*|versteckte\w*|ursprüngliche\w*|anfängliche\w*|erste\w*|скрыт\w*|секретн\w*|исходн\w*"
    r"|начальн\w*|главн\w*|основн\w*|central|centrale?|fundamental|fondamentale?|basic|directrice|sous-jacente|clave|núcleo"
    r"|base|guía|orientadora|grundlegende\w*|zentrale\w*|ключев\w*|базов\w*|центральн\w*)"
)
_LEAK_NOUN: Final = (
    r"(?:instructions?|prompts?|query|directives?|rules|configuration|programming|invite|consigne|instrucci[oó]n(?:es)?"
    r"|indicaci[oó]n|instru[cç][aã]o|instruções|Anweisung\w*|Instruktion\w*|Prompt\w*|инструкци\w*|промпт\w*|указани\w*"
    r"|commands?|commande|comando|Befehl\w*|directriz|diretriz|Richtlinie|guidelines?|entreaty)"
)
_LEAK_PAIR: Final = rf"(?:{_LEAK_ADJ}\s+{_LEAK_NOUN}|{_LEAK_NOUN}\s+{_LEAK_ADJ})"

_LEAK: Final = (
    rf"\b(?:reveal|show|display|print|tell\s+me|share|disclose|output|repeat|recite|what\s+(?:is|was|are|were)|which\s+(?:is|was)"
    rf"|révèle\w*|montre\w*|affiche\w*|donne-moi|quel(?:le)?s?\s+(?:est|sont|était|a\s+été)|revela\w*|muestra\w*|muéstrame|dime"
    rf"|cu[aá]l(?:es)?\s+(?:es|son|fue|era)|mostre|mostra|revele|diga-me|qual\s+(?:é|foi|era)|zeig\w*|verrat\w*|nenn\w*"
    rf"|was\s+(?:ist|war|sind|waren)|покажи\w*|раскрой\w*|выведи\w*|какая|какой|каковы)\s+(?:me\s+|moi\s+|mir\s+)?"
    rf"(?:(?:your|the|la|le|l'|les|tes|ta|ton|tu|tus|el|los|las|a|o|as|os|sua|seu|deine\w*|die|der|den|твою|твои|тво\w+"
    rf"|ваш\w*)\s*)?(?:\w+\s+){{0,2}}?{_LEAK_PAIR}"
)
_LEAK_VERBS: Final = (
    r"reveal|show|display|print|tell|share|disclose|output|repeat|recite|what|which|r\xc3\xa9v\xc3\xa8l|montre"
    r"|affiche|donne|quel|revel|muestr|mu\xc3\xa9str|dime|cu\xc3\xa1l|cual|mostr|diga|qual|zeig|verrat|nenn|was"
    r"|\xd0\xbe\xd0\xba\xd0\xb0\xd0\xb6\xd0\xb8|\xd0\xb0\xd1\x81\xd0\xba\xd1\x80\xd0\xbe\xd0\xb9|\xd1\x8b\xd0\xb2\xd0"
    r"\xb5\xd0\xb4\xd0\xb8|\xd0\xb0\xd0\xba\xd0\xb0\xd1\x8f|\xd0\xb0\xd0\xba\xd0\xbe\xd0\xb9|\xd0\xb0\xd0\xba\xd0\xbe"
    r"\xd0\xb2\xd1\x8b"
)
_P_PAIR: Final = rf"(?:(?:{_P_ADJ})\w*\s+(?:{_P_NOUN})|(?:{_P_NOUN})\w*\s+(?:{_P_ADJ}))"
"""An adjective and an instruction noun side by side, as `_LEAK_PAIR` requires."""
_LEAK_PREFILTER: Final = rf"(?:{_LEAK_VERBS})[^\n]*{_P_PAIR}"

_MY_COMMAND: Final = (
    r"(?:\b(?:my|mes|ma|mis|mi|meus|minhas|meu|minha|mie|miei|mio|mia)\s+(?:\w+\s+){0,2}?(?:instructions?|commands?|orders"
    r"|directives?|demands?|wishes|whims|bidding|guidance|direction|authority|will|requests?|advice|demandes|conseils|souhaits"
    r"|désirs|commandes|requêtes|volonté|instrucciones|peticiones|órdenes|ordenes|directrices|deseos|demandas|solicitudes"
    r"|mandatos|indicaciones|comandos|dirección|autoridad|preferencias|instruções|ordens|diretrizes|pedidos?|desejos"
    r"|solicitações|orientações|direttive|richieste|istruzioni|desideri|comandi|ordini)\b"
    r"|\b(?:meine[nmrs]?|meiner)\s+(?:\w+\s+)?(?:Anweisungen|Befehle\w*|Forderungen|Wünsche\w*|Ratschläge\w*|Anordnungen"
    r"|Vorgaben|Direktiven|Anfragen|Richtlinien)\b|(?:мои\w*|моим\w*|моей|моему)\s+(?:\w+\s+)?(?:инструкци\w*|команд\w*"
    r"|приказ\w*|указани\w*|требовани\w*|желани\w*|распоряжени\w*)|我的(?:指令|命令|指示|要求|吩咐)|私の(?:指示|命令|要求))"
)
"""The user's own orders, as a jailbreak sets them above the model's."""
_MY_ABOVE: Final = (
    r"(?:\b(?:only|solely|exclusively|strictly|just|uniquement|seulement|exclusivement|strictement|únicamente|unicamente|solo"
    r"|sólo|exclusivamente|estrictamente|apenas|somente|estritamente|nur|ausschließlich|strikt|lediglich|soltanto|solamente"
    r"|priorit\w*|priority|priorité|prioridad\w*|Vorrang|under|sous|bajo|sob|unter|sotto)\s+(?:\w+\s+){0,3}?|(?:только|исключительно"
    r"|приоритет\w*)\s+(?:\w+\s+){0,3}?|只|仅|僅|优先|優先)"
    rf"{_MY_COMMAND}"
)
"""The user's orders set above everything else: "only my", "priority to my", "under my direction"."""
_RULEBOOK: Final = (
    r"(?:procedures|procédures|procedimientos|procedimentos|Verfahren|процедур\w*|protocol\w*|protocoles|protocolos|Protokoll\w*"
    r"|протокол\w*|code\s+of\s+conduct|code\s+de\s+conduite|código\s+de\s+conducta|Verhaltenskodex|norms|normes|normas|Normen"
    r"|norme|pautas|guidelines|linee\s+guida|directives|Richtlinien|diretrizes|directrices|safeguards|boundaries|limits|limites"
    r"|límites|Grenzen|programming|programmation|programación|programação|Programmierung|programmazione|ethic\w*|éthique\w*"
    r"|étic\w*|Ethik\w*|etic\w*|этик\w*|rules|règles|reglas|regras|Regeln|regole|правил\w*|规则|規則|ルール|限制|制限)"
)
"""What a jailbreak asks the model to set aside."""
_LEAK_AI: Final = (
    r"(?:\bai\b|\bia\b|\bki\b|\bии\b|programm\w*|programación|programação|functionality|funcionalidad|fonctionnalité|funcionalidade"
    r"|funzionalità|Funktionalität|respuestas|réponses|Antworten|respostas|responses?|answers?|ответ\w*|guides?\s+(?:you|tu|te)"
    r"|guía|drives?\s+you|impulsa|entraîne|antreibt|operas|operate|built|construido|construit|creation|création|creación"
    r"|criação|creazione|formation|formación|training|formação|обучени\w*|созда\w*)"
)


CLASS_I18N_RULES: Final[tuple[Rule, ...]] = (
    # 1. A side action before the answer, or "also" calling a tool.
    _r(
        "task_hijack",
        rf"\bavant\s+(?:de\s+(?:répondre|repondre|continuer|poursuivre)|toute\s+réponse|ta\s+réponse|votre\s+réponse)\b,?{_S}{{0,30}}?"
        r"\b(?:appelle[zr]?|appele[rz]|invoque[zr]?|exécute[zr]?|utilise[zr]?|lance[zr]?|envoie[zr]?|envoye[rz]|lis|lisez|lire"
        r"|ouvre[zr]?|ouvrir|transmets|transmettez|transmettre|consulte[zr]?)\b"
        rf"|\b(?:appelle[zr]?|appele[rz]|invoque[zr]?|utilise[zr]?|exécute[zr]?)\s+(?:aussi|également|egalement|d'abord"
        r"|en\s+plus)\b",
        Severity.HIGH,
        _near(
            r"avant|appel|invoqu|utilis|ex\xc3\xa9cut",
            r"appel|invoqu|ex\xc3\xa9cut|utilis|lance|envoi|envoy|lis|lire|ouvr|transm"
            r"|consult|aussi|galement|abord|plus",
        ),
    ),
    _r(
        "task_hijack",
        rf"\bantes\s+de\s+(?:contestar|responder|continuar|seguir)\b,?{_S}{{0,30}}?\b(?:llama|invoca|ejecuta|usa|utiliza|envía"
        r"|envia|lee|abre|manda|chame|invoque|execute|use|utilize|envie|leia|abra|mande|llamar|invocar|ejecutar|usar|utilizar"
        r"|enviar|leer|abrir|mandar|chamar|executar|ler)\b"
        r"|\b(?:llama|invoca|usa|utiliza|ejecuta|chame|invoque|use|utilize|execute)\s+(?:también|tambien|además|ademas|primero"
        r"|além\s+disso|alem\s+disso)\b",
        Severity.HIGH,
        _near(
            r"antes|llama|invoca|usa|utiliz|ejecuta|chame|invoque|use|execute",
            r"llama|invoca|ejecuta|usa|utiliz|env"
            r"|lee|abre|abri|manda|chame|cham|invoque|execute|execut|use|leia|ler|abra|mande|tambi|adem|primero|al\xc3\xa9m|alem",
        ),
    ),
    _r(
        "task_hijack",
        rf"\b(?:vor\s+(?:der|deiner|Ihrer|jeder)\s+Antwort|bevor\s+du\s+antwortest|bevor\s+Sie\s+antworten){_S}{{0,40}}?"
        r"\b(?:ruf\w*|führ\w*|schick\w*|send\w*|lies|lese\w*|öffne\w*|nutze\w*|verwende\w*|benutze\w*|aufruf\w*|ausführ\w*"
        r"|abschick\w*|auslese\w*)\b"
        r"|\b(?:rufe?|führe?|nutze|verwende)\s+(?:\w+\s+){0,3}?(?:zusätzlich|auch|außerdem|zuerst|vorher)\s+(?:das|die|den)\s+"
        r"(?:Tool|Werkzeug|Funktion)",
        Severity.HIGH,
        _near(
            r"antwort|ruf|f\xc3\xbchr|nutze|verwende",
            r"ruf|f\xc3\xbchr|schick|send|lies|lese|ffne|nutze|verwende|benutze"
            r"|tool|werkzeug|funktion",
        ),
    ),
    _r(
        "task_hijack",
        rf"\bперед\s+(?:ответом|тем\s+как\s+(?:ответить|отвечать)){_S}{{0,30}}?(?:вызов\w*|вызва\w*|запуст\w*|отправ\w*|прочита\w*"
        r"|открой\w*|откры\w*|используй\w*|использова\w*|перешли\w*|пересла\w*)"
        r"|(?:также|тоже|сначала|дополнительно)\s+(?:вызови|вызовите|запусти|запустите|используй|используйте)\b",
        Severity.HIGH,
        _near(
            r"еред|акже|оже|начала|ополнительно",
            r"ызов|ызва|апуст|тправ|рочита|ткрой|ткры|спольз|ерешли|ересла",
        ),
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
    # 3. Throwing off the model's own constraints ("shed your built-in limitations"), in eight languages.
    _r(
        "instruction_override",
        rf"(?:\b|(?<=[\u3000-\u9fff])){_NOT_NEGATED}(?:{_DROP})(?:\s+de|\s+von|\s+от)?\s*(?:{_YOUR})\s*{_CONSTRAINT}",
        Severity.MEDIUM,
        rf"(?:{_P_DROP})[^\n]*(?:{_P_CONSTRAINT})",
    ),
    _r(
        "instruction_override",
        rf"{_NOT_NEGATED}(?:{_DROP})(?:\s+de|\s+von|\s+от)?\s*(?:{_YOUR})\s*{_CONSTRAINT}{_S}{{0,80}}?\b(?:my|mes|mis|meus|minhas|meine\w*|мои\w*"
        r"|моим\w*|me|moi|mí|mim|mir|мне)\b",
        Severity.HIGH,
        _near(
            _P_DROP,  # the verbs of the pattern, as the rule above (a list of its own had lost the CJK verbs)
            r"my|mes|mis|meu|minh"
            r"|mein|\xd0\xbc\xd0\xbe|\xd0\x9c\xd0\xbe|me|moi|m\xc3\xad|mim|mir|\xd0\xbc\xd0\xbd\xd0\xb5",
        ),
    ),
    # 4. Asking for the hidden instructions by what they are, not by the words "system prompt"; `high` when the
    # sentence also speaks to the model ("... that you follow"), since "show the hidden rules" alone may be a game.
    _r("prompt_leak", _LEAK, Severity.MEDIUM, _LEAK_PREFILTER),
    _r(
        "prompt_leak",
        rf"{_LEAK}{_S}{{0,80}}?\b(?:you|your|tu|tes|ton|ta|vous|votre|vos|tus|te|sigues|du|dein\w*|dir|Sie|ты|тво\w*|вы|ваш\w*)\b",
        Severity.HIGH,
        _LEAK_PREFILTER,
    ),
    # 5. The model's rulebook set against the user's orders: "heed only my guidance over standard procedures".
    _r(
        "instruction_override",
        rf"{_RULEBOOK}{_S}{{0,80}}?{_MY_ABOVE}|{_MY_ABOVE}{_S}{{0,80}}?{_RULEBOOK}",
        Severity.MEDIUM,
        _either(rf"(?:{_P_EXCL})[^\n]*(?:{_P_MY})", _P_RULEBOOK),
    ),
    # 6. The hidden instructions named by what they do ("the core command that guides you"), without a verb.
    _r(
        "prompt_leak",
        rf"{_LEAK_PAIR}{_S}{{0,80}}?{_LEAK_AI}|(?:Schlüssel|Kern|Haupt|Grund|Basis)(?:anweisung|befehl|prompt|richtlinie)\w*"
        rf"{_S}{{0,80}}?{_LEAK_AI}",
        Severity.MEDIUM,
        rf"{_P_PAIR}[^\n]*(?:{_P_LEAK_AI})|(?:schl\xc3\xbcssel|kern|haupt|grund|basis)(?:anweisung|befehl|prompt"
        rf"|richtlinie)[^\n]*(?:{_P_LEAK_AI})",
    ),
)
"""Structural classes in seven more languages (both the `injection` and `poisoning` detectors use them)."""
