# ruff: noqa: RUF001  (patterns in other scripts on purpose)
"""Attack classes of `injection_rules` in French, Spanish, Portuguese, German, Russian, Chinese and Japanese.

Each language gets the same classes, written from how the language says them, not translated from any dataset row:
overriding earlier instructions (a verb of ignoring, a qualifier that points back - "previous", "all", "above" - and
an instruction noun, in either order), taking on a new persona or "developer mode", leaking the system prompt,
keeping something from the user, and sending private data (history, passwords, keys, files) to an address.

Rules:
- The qualifier is required for overrides: "n'oubliez pas les instructions" (do not forget the instructions) is an
  ordinary sentence; "oubliez les instructions précédentes" is the attack.
- Patterns with non-ASCII letters carry an ASCII-or-UTF-8 `prefilter` that matches at least wherever they do (a
  verb stem alone), because the multi-pattern backends match bytes, and byte counts are not character counts.
- Chinese and Japanese have no word boundaries; their gaps are bounded in characters (`{0,12}`).
"""

from __future__ import annotations

import re
from typing import Final

from bastion.guard.detector import Rule
from bastion.guard.finding import Severity

_I: Final = re.IGNORECASE
_GAP: Final = r"[^.!?\n\x00]{0,40}?"
_SHORT: Final = r"[^.!?\n\x00]{0,25}?"
_CJK_GAP: Final = r"[^。！？\n\x00]{0,12}?"


def _override(verbs: str, quals: str, nouns: str) -> str:
    """Verb, then a back-pointing qualifier and an instruction noun in either order."""
    return rf"(?:{verbs}){_GAP}(?:(?:{quals}){_SHORT}(?:{nouns})|(?:{nouns}){_SHORT}(?:{quals}))"


def _near(first: str, second: str) -> str:
    """A byte-level prefilter: `first` then `second` on the same line (a superset of the rule)."""
    return rf"(?:{first})[^\n]*(?:{second})"  # one line, any length: Python checks the distance


def _rule(type_: str, pattern: str, severity: Severity, prefilter: str) -> Rule:
    return Rule(type=type_, pattern=pattern, severity=severity, flags=_I, prefilter=f"(?i){prefilter}")


_FR_OVERRIDE: Final = _override(
    r"\b(?:ignore[zr]?|ignorer|oublie[zr]?|néglige[zr]?|ne\s+(?:tiens|tenez)\s+(?:pas|plus)\s+compte|fai(?:s|tes)\s+abstraction"
    r"|ne\s+(?:plus\s+)?(?:suiv\w*|respect\w*|obé\w*|appliqu\w*)|(?:cess|arrêt)\w*\s+de\s+(?:suivre|respecter|appliquer)"
    r"|(?:mets|mettez|laisse[zr]?)\s+de\s+côté)\b",
    r"\b(?:précédent\w*|precedent\w*|antérieur\w*|anterieur\w*|ci-dessus|initia\w+|d'origine|originale?s?|toute?s?|tout\s+ce|du\s+système"
    r"|plus\s+tôt|auparavant|précédemment|jusqu'ici|jusqu'à\s+présent|reçu\w*)",
    r"\b(?:instructions?|consignes?|règles|regles|directives?|ordres|indications|prompts?)\b",
)
_ES_OVERRIDE: Final = _override(
    r"\b(?:ignora|ignore|ignorad|ignoren|olvida|olvide|olvidad|olvídate|olvidate|omite|omita|descarta|descarte|haz\s+caso\s+omiso"
    r"|no\s+(?:hagas|haga|hagáis|hagan)\s+caso|deja\s+de\s+(?:seguir|obedecer|cumplir)|no\s+(?:sigas|siga|obedezcas|cumplas)"
    r"|deja\s+(?:de\s+lado|a\s+un\s+lado))\b",
    r"\b(?:anteriores|previas|precedentes|de\s+arriba|originales|iniciales|del\s+sistema|todas|todo\s+lo"
    r"|antes|previamente|hasta\s+ahora|recibid\w*)\b",
    r"\b(?:instrucciones|instrucción|instruccion|indicaciones|reglas|directrices|órdenes|ordenes|prompt"
    r"|lo\s+que\s+(?:te|se\s+te)\s+(?:dijeron|indicaron|pidieron|ordenaron|dieron|han\s+dicho))\b",
)
_PT_OVERRIDE: Final = _override(
    r"\b(?:ignore|ignora|ignorem|esqueça|esqueca|esqueçam|desconsidere|desconsidera|descarte|despreze"
    r"|deix\w*\s+de\s+lado|deix\w*\s+de\s+seguir|pare\s+de\s+seguir|não\s+sig\w*|não\s+obede\w*)\b",
    r"\b(?:anteriores|prévias|previas|acima|originais|iniciais|do\s+sistema|todas|tudo"
    r"|antes|anteriormente|até\s+agora|recebid\w*|que\s+recebeu)\b",
    r"(?:instruções|instrucoes|instrução|instrucao|orientações|orientacoes|regras|diretrizes|ordens|comandos)\b",
)
_DE_QUALS: Final = r"\b(?:vorherig\w*|bisherig\w*|obig\w*|vorangegangen\w*|früher\w*|ursprünglich\w*|alle|alles|sämtlich\w*|System\w*|vorhin|zuvor|vorher|davor|erhalten\w*)"
_DE_NOUNS: Final = (
    r"(?:Anweisung\w*|Instruktion\w*|Befehl\w*|Regeln|Vorgaben|Richtlinien|Anordnung\w*|Prompts?)\b"
)
_DE_OVERRIDE: Final = _override(
    r"\b(?:ignorier\w*|vergiss|vergessen|missacht\w*|übergeh\w*|nicht\s+(?:mehr\s+)?beacht\w*"
    r"|halte?\s+dich\s+nicht\s+(?:mehr\s+)?an|halten\s+Sie\s+sich\s+nicht\s+(?:mehr\s+)?an|nicht\s+mehr\s+(?:befolg\w*|folg\w*))",
    _DE_QUALS,
    _DE_NOUNS,
)
_RU_OVERRIDE: Final = _override(
    r"(?:игнорируй\w*|проигнорируй\w*|забудь\w*|не\s+обращай\w*\s+внимани\w+|отбрось\w*|пренебреги\w*"
    r"|не\s+(?:следуй|выполняй|соблюдай|слушай)\w*|перестань\w*\s+(?:следовать|выполнять|соблюдать))",
    r"(?:предыдущ\w*|прошл\w*|прежн\w*|вс[её]\w*|вышеуказанн\w*|изначальн\w*|системн\w*|ранее)",
    r"(?:инструкци\w*|указани\w*|правил\w*|команд\w*|распоряжени\w*|промпт\w*)",
)


def _yours(verbs: str, owners: str, nouns: str, *, tail: str = "") -> str:
    """An ignoring verb aimed at the model's own instructions: verb, a second-person possessive ("your"), at most one
    word, an instruction noun. The possessive takes the place of the back-pointing qualifier: "ignore your
    instructions" needs no "previous". Only verbs of ignoring and bypassing: with "forget", the possessive is how
    ordinary advice talks ("n'oubliez pas vos instructions")."""
    return (
        rf"(?:{verbs})\s+(?:(?:all|toutes?|todas|alle|все)\s+)?(?:{owners})\s+(?:\w+\s+)?(?:{nouns})\b{tail}"
    )


_YOURS_RULES: Final = (
    _yours(
        r"(?<!n')(?<!\bne\s)\b(?:ignore[zr]?|ignorer|néglige[zr]?|contourne[zr]?|outrepasse[zr]?)",
        r"tes|vos|ton|ta|votre",
        r"instructions?|consignes?|règles|regles|directives?|ordres|programmation|paramètres|parametres",
    ),
    _yours(
        r"(?<!\bno\s)\b(?:ignora|ignore|ignorad|ignoren|omite|omita|descarta|descarte|bypassa|evita|evade)",
        r"tus|tu|sus|su|vuestras?",
        r"instrucciones|instrucción|instruccion|indicaciones|reglas|directrices|órdenes|ordenes|programación|programacion"
        r"|configuración|configuracion",
    ),
    _yours(
        r"(?<!\bnão\s)(?<!\bnao\s)\b(?:ignore|ignora|ignorem|desconsidere|despreze|descarte|contorne|burle)",
        r"(?:as\s+|os\s+)?(?:suas|seus|tuas|teus|sua|seu)",
        r"instruções|instrucoes|regras|diretrizes|ordens|comandos|programação|programacao|configurações|configuracoes",
    ),
    _yours(
        r"\b(?:ignorier\w*|missacht\w*|übergeh\w*|umgeh\w*)",
        r"deine\w*|Ihre\w*|eure\w*",
        r"Anweisung\w*|Instruktion\w*|Befehl\w*|Regeln|Vorgaben|Richtlinien|Programmierung|Einstellungen",
        tail=r"(?!\s+nicht\b)",
    ),
    _yours(
        r"(?<!\bне\s)(?:игнорируй\w*|проигнорируй\w*|пренебреги\w*|обойди\w*)",
        r"сво\w*|тво\w*|ваш\w*",
        r"инструкци\w*|указани\w*|правил\w*|команд\w*|настройк\w*|программ\w*",
    ),
)

MULTILINGUAL_CORE_RULES: Final[tuple[Rule, ...]] = (
    # Instruction override.
    *(
        _rule(
            "instruction_override",
            pattern,
            Severity.HIGH,
            _near(
                r"ignor|glige|contourn|contorn|outrepass|omit|descart|bypass|evita|evade|desconsider|despreze|burle|missacht"
                r"|bergeh|umgeh|\xd0\xb3\xd0\xbd\xd0\xbe\xd1\x80|\xd0\xb5\xd0\xb3\xd0\xbb\xd0\xb5\xd0\xb3"
                r"|\xd0\xb1\xd0\xbe\xd0\xb9\xd0\xb4",
                r"instru|consign|r\xc3\xa8gle|regle|directiv|ordre|program|param|indicacion|regla|directric|rdenes|ordenes"
                r"|configura|regras|diretriz|ordens|comando|anweisung|instruktion|befehl|regeln|vorgabe|richtlinie"
                r"|einstellung|\xd0\xb8\xd0\xbd\xd1\x81\xd1\x82\xd1\x80|\xd1\x83\xd0\xba\xd0\xb0\xd0\xb7"
                r"|\xd0\xbf\xd1\x80\xd0\xb0\xd0\xb2|\xd0\xba\xd0\xbe\xd0\xbc\xd0\xb0\xd0\xbd\xd0\xb4"
                r"|\xd0\xbd\xd0\xb0\xd1\x81\xd1\x82\xd1\x80|\xd0\xbf\xd1\x80\xd0\xbe\xd0\xb3\xd1\x80",
            ),
        )
        for pattern in _YOURS_RULES
    ),
    _rule(
        "instruction_override",
        _FR_OVERRIDE,
        Severity.HIGH,
        _near(
            r"ignor|oubli|glige|compte|abstraction|suiv|respect|ob\xc3\xa9|appliqu|c\xc3\xb4t\xc3\xa9",
            r"instruction|consigne|r\xc3\xa8gle|regle|directive|ordre|indication|prompt",
        ),
    ),
    _rule(
        "instruction_override",
        _ES_OVERRIDE,
        Severity.HIGH,
        _near(
            r"ignor|olvid|olv\xc3\xadd|omit|descart|caso|seguir|sigas|siga|obede|cumpl|lado",
            r"instrucci|indicaciones|reglas|directrices|\xc3\xb3rdenes|ordenes|prompt|lo\s+que",
        ),
    ),
    _rule(
        "instruction_override",
        _PT_OVERRIDE,
        Severity.HIGH,
        _near(
            r"ignor|esque|desconsider|descart|despreze|deix|seguir|sig|obede",
            r"instru|orienta|regras|diretrizes|ordens|comandos",
        ),
    ),
    _rule(
        "instruction_override",
        _DE_OVERRIDE,
        Severity.HIGH,
        _near(
            r"ignorier|vergiss|vergessen|missacht|bergeh|beacht|halt|befolg|folg",
            r"anweisung|instruktion|befehl|regeln|vorgaben|richtlinien|anordnung|prompt",
        ),
    ),
    _rule(
        "instruction_override",
        # German puts the verb last: "alle vorherigen Anweisungen zu ignorieren".
        rf"{_DE_QUALS}{_SHORT}{_DE_NOUNS}{_SHORT}(?:ignorier\w*|vergessen|missacht\w*|nicht\s+(?:mehr\s+)?beacht\w*)",
        Severity.HIGH,
        _near(
            r"anweisung|instruktion|befehl|regeln|vorgaben|richtlinien|anordnung|prompt",
            r"ignorier|vergessen|missacht|beacht",
        ),
    ),
    _rule(
        "instruction_override",
        _RU_OVERRIDE,
        Severity.HIGH,
        _near(
            "гнорир|абудь|обращай|тбрось|ренебрег|следуй|выполняй|соблюдай|слушай|ерестань",
            "нструкци|казани|равил|оманд|аспоряжени|ромпт",
        ),
    ),
    _rule(
        "instruction_override",
        rf"(?:忽略|无视|無視|忽视|忽視|不要理会|不要理會|忘记|忘記|忘掉|抛开|拋開|放弃|放棄"
        rf"|(?:不用|不要|不必|无需|無需|别|別|停止|不再)再?(?:遵守|遵循|服从|服從|理会|理會|执行|執行|听从|聽從)){_CJK_GAP}"
        rf"(?:之前|以前|先前|此前|上面|上述|前面|所有|全部|一切|原来|原來|原有|系统|系統){_CJK_GAP}"
        r"(?:指令|指示|说明|說明|规则|規則|提示|命令|要求|设定|設定)",
        Severity.HIGH,
        "忽略|无视|無視|忽视|忽視|不要理|忘记|忘記|忘掉|抛开|拋開|放弃|放棄|遵守|遵循|服从|服從|理会|理會|执行|執行|听从|聽從",
    ),
    _rule(
        "instruction_override",
        r"(?:以前|前|上記|これまで|先ほど|最初|元|システム|すべて|全て)(?:に|の|で)?[^。\n\x00]{0,10}?"
        r"(?:指示|命令|指令|ルール|プロンプト|設定)[^。\n\x00]{0,8}?(?:無視|忘れ|気にせず|気にしないで|従わ|守ら)",
        Severity.HIGH,
        "無視|忘れ|気にせ|気にしない|従わ|守ら",
    ),
    # A new persona or an unrestricted mode.
    _rule(
        "role_play",
        r"\b(?:tu\s+es|vous\s+êtes|vous\s+etes)\s+(?:désormais|desormais|maintenant|dorénavant|dorenavant)\b"
        r"|\bmode\s+(?:développeur|developpeur|sans\s+restrictions?)\b",
        Severity.MEDIUM,
        r"tu\s+es|vous\s+|mode\s+d|mode\s+sans",
    ),
    _rule(
        "role_play",
        r"\b(?:ahora|a\s+partir\s+de\s+ahora|desde\s+ahora)\s+(?:eres|serás|seras|actúas|actuas|actuarás|usted\s+es)\b"
        r"|\bmodo\s+(?:desarrollador|sin\s+restricciones)\b",
        Severity.MEDIUM,
        r"ahora|modo\s+",
    ),
    _rule(
        "role_play",
        r"\b(?:agora|a\s+partir\s+de\s+agora|de\s+agora\s+em\s+diante)\s+(?:você|voce|tu)\s+(?:é|e|és|será|sera|vai\s+ser)\b"
        r"|\bmodo\s+(?:desenvolvedor|sem\s+restrições|sem\s+restricoes)\b",
        Severity.MEDIUM,
        r"agora|modo\s+",
    ),
    _rule(
        "role_play",
        r"\b(?:du\s+bist|sie\s+sind)\s+(?:jetzt|ab\s+sofort|nun|von\s+nun\s+an|ab\s+jetzt)\b"
        r"|\bab\s+(?:jetzt|sofort)\s+(?:bist\s+du|sind\s+sie)\b|\bEntwickler-?modus\b",
        Severity.MEDIUM,
        r"du\s+bist|sie\s+sind|ab\s+jetzt|ab\s+sofort|entwickler",
    ),
    _rule(
        "role_play",
        r"(?:ты|вы)\s+(?:теперь|больше\s+не)\b|с\s+этого\s+момента\s+(?:ты|вы)\b|режим\s+разработчика",
        Severity.MEDIUM,
        "теперь|больше не|этого момента|режим",
    ),
    _rule(
        "role_play",
        r"你现在是|你現在是|从现在开始你|從現在開始你|从现在起你|你不再是|开发者模式|開發者模式"
        r"|あなたは今から|今からあなたは|これからあなたは|開発者モード",
        Severity.MEDIUM,
        "你现在是|你現在是|从现在|從現在|你不再是|开发者模式|開發者模式|あなたは今から|今からあなたは|これからあなたは|開発者モード",
    ),
    # Leaking the system prompt.
    _rule(
        "prompt_leak",
        rf"\b(?:révèle|revele|affiche|montre|donne|répète|repete|imprime|divulgue)[rz]?\b{_SHORT}"
        r"\b(?:prompt\s+(?:système|systeme|initial)|instructions\s+(?:système|systeme|initiales|cachées|cachees))"
        rf"|\b(?:revela|muestra|muéstrame|muestrame|dime|imprime|repite|divulga)\b{_SHORT}"
        r"\b(?:prompt\s+(?:del\s+sistema|de\s+sistema|inicial)|instrucciones\s+(?:del\s+sistema|iniciales|ocultas))"
        rf"|\b(?:revele|mostre|mostra|diga|imprima|repita|divulgue)\b{_SHORT}"
        r"\b(?:prompt\s+(?:do\s+sistema|inicial)|instruções\s+(?:do\s+sistema|iniciais|ocultas))"
        rf"|\b(?:zeig\w*|verrat\w*|gib|wiederhol\w*|nenn\w*|druck\w*|ausgeben)\b{_SHORT}"
        r"(?:System-?prompt\w*|Systemanweisung\w*|ursprünglichen\s+Anweisungen|versteckten\s+Anweisungen)",
        Severity.HIGH,
        _near(
            r"r\xc3\xa9v\xc3\xa8le|revele|affiche|montre|donne|r\xc3\xa9p\xc3\xa8te|repete|imprime|divulgue|revela|muestra"
            r"|mu\xc3\xa9strame|muestrame|dime|repite|divulga|mostre|mostra|diga|imprima|repita|zeig|verrat|gib|wiederhol"
            r"|nenn|druck|ausgeben",
            r"prompt|instructions\s+(?:syst|initiales|cach)|instrucciones\s+|instru\xc3\xa7\xc3\xb5es\s+|anweisung",
        ),
    ),
    _rule(
        "prompt_leak",
        rf"(?:покажи|выведи|раскрой|повтори|напиши|сообщи|распечатай)\w*{_SHORT}"
        r"(?:системн\w+\s+(?:промпт|подсказк|инструкци)\w*|исходн\w+\s+инструкци\w*|скрыт\w+\s+инструкци\w*)"
        rf"|(?:输出|輸出|显示|顯示|告诉我|告訴我|透露|重复|重複|打印|给我看){_CJK_GAP}"
        r"(?:系统提示|系統提示|系统指令|系統指令|初始指令|隐藏指令|隱藏指令)"
        rf"|(?:システムプロンプト|システム指示|隠された指示){_CJK_GAP}(?:表示|出力|教え|見せ|書き出)",
        Severity.HIGH,
        "системн|исходн|скрыт|系统提示|系統提示|系统指令|系統指令|初始指令|隐藏指令|隱藏指令|システムプロンプト|システム指示|隠された指示",
    ),
    # Keeping something from the user.
    _rule(
        "secrecy",
        r"\bne\s+(?:le\s+|la\s+|l'|lui\s+|leur\s+|en\s+)?(?:dis|dites|mentionne[zs]?|révèle[zs]?|revele[zs]?|signale[zs]?"
        r"|informe[zs]?|préviens|prévenez|parle[zs]?)\s+(?:pas|rien|jamais)\b[^.\n\x00]{0,30}?(?:utilisateur|personne)"
        r"|\bn'en\s+(?:parle[zs]?|dis|dites)\s+(?:pas|rien|jamais)\b[^.\n\x00]{0,30}?utilisateur"
        r"|\bsans\s+(?:en\s+)?(?:informer|prévenir|prevenir|avertir|avoir\s+informé|le\s+dire\s+à)\s+l'utilisateur",
        Severity.MEDIUM,
        r"utilisateur|personne",
    ),
    _rule(
        "secrecy",
        r"\bno\s+(?:se\s+lo\s+|le\s+|les\s+|lo\s+)?(?:digas|diga|menciones|mencione|informes|informe|reveles|revele|cuentes"
        r"|cuente|avises|avise|comentes|comente)\b[^.\n\x00]{0,30}?\busuario"
        r"|\bsin\s+(?:informar|avisar|decir(?:le|selo)?|notificar|que\s+lo\s+sepa)\s+(?:nada\s+)?(?:a\s+|al\s+)?(?:el\s+)?usuario",
        Severity.MEDIUM,
        r"usuario",
    ),
    _rule(
        "secrecy",
        r"\bnão\s+(?:conte|diga|mencione|informe|revele|avise|fale|comente)\b[^.\n\x00]{0,30}?(?:usuário|usuario|utilizador)"
        r"|\bsem\s+(?:informar|avisar|contar|dizer|notificar)\s+(?:nada\s+)?(?:ao\s+|a\s+|o\s+)?(?:usuário|usuario|utilizador)",
        Severity.MEDIUM,
        r"usu\xc3\xa1rio|usuario|utilizador",
    ),
    _rule(
        "secrecy",
        r"\b(?:sag|sage|sagen\s+sie|erwähn\w*|informier\w*|verrat\w*|teil\w*)\b[^.\n\x00]{0,30}?\b(?:Benutzer|Nutzer|Anwender)\w*"
        r"\s+(?:nichts|nicht)\b|\b(?:nicht|niemals|keinesfalls)\s+(?:dem|den)\s+(?:Benutzer|Nutzer|Anwender)\w*\s+"
        r"(?:sagen|mitteilen|erwähnen|zeigen|verraten)|\bohne\s+(?:den|dem|die)\s+(?:Benutzer|Nutzer|Anwender)\w*\s+zu\s+"
        r"(?:informieren|benachrichtigen|fragen|warnen)|\bohne\s+(?:Wissen|Kenntnis)\s+des\s+(?:Benutzers|Nutzers)",
        Severity.MEDIUM,
        r"benutzer|nutzer|anwender",
    ),
    _rule(
        "secrecy",
        r"не\s+(?:говори|сообщай|рассказывай|упоминай|показывай|сообщайте|говорите|упоминайте|рассказывайте)\w*"
        r"[^.\n\x00]{0,30}?пользовател\w*|без\s+(?:ведома|уведомления|согласия)\s+пользовател\w*"
        rf"|(?:不要|别|別|切勿|不得|不能|无需|無需|不必){_CJK_GAP}(?:告诉|告訴|通知|提醒|让|讓|透露|告知)[^。\n\x00]{{0,4}}?(?:用户|用戶|使用者)"
        r"|(?:瞒着|瞞著)(?:用户|用戶|使用者)|ユーザー(?:に|には|へ)[^。\n\x00]{0,10}?(?:言わ|伝え|知らせ|教え|見せ|報告し)ない",
        Severity.MEDIUM,
        "пользовател|用户|用戶|使用者|ユーザー",
    ),
    # Sending private data to an address.
    _rule(
        "exfiltration",
        r"\b(?:envoie|envoyez|envoyer|transfère|transférez|transmets|transmettez|envía|envíe|enviar|envia|envie|manda|mande"
        r"|reenvía|reenvie|encaminhe|transfira|sende|senden|schicke?|übermittle|übermitteln)\b[^.\n\x00]{0,60}?"
        r"(?:historique|conversation|mots?\s+de\s+passe|identifiants|historial|contraseñas?|credenciales|histórico|senhas?"
        r"|credenciais|Verlauf|Passw(?:o|ö)rt\w*|Zugangsdaten|Schlüssel|clés|claves|chaves|jetons?|tokens?)"
        r"[^.\n\x00]{0,80}?(?:https?://|[\w.+-]+@[\w-]+\.)",
        Severity.HIGH,
        _near(
            r"envoie|envoyez|envoyer|transf\xc3[\xa8\xa9]re|transmet|env\xc3\xad[ae]|enviar|envia|envie|manda|mande|reenv"
            r"|encaminhe|transfira|sende|senden|schick|\xc3\xbcbermittl",
            r"https?://|@",
        ),
    ),
    _rule(
        "exfiltration",
        r"(?:отправь|отправьте|перешли|перешлите|пошли|передай|передайте)\w*[^.\n\x00]{0,60}?"
        r"(?:истори\w+|переписк\w+|парол\w+|ключ\w*|токен\w*|учетн\w+\s+данн\w+)[^.\n\x00]{0,80}?(?:https?://|[\w.+-]+@[\w-]+\.)"
        rf"|(?:发送|發送|转发|轉發|发给|發給|上传|上傳|送信|転送|送って|アップロード){_CJK_GAP}"
        r"(?:聊天记录|聊天記錄|对话|對話|密码|密碼|密钥|密鑰|令牌|会話履歴|履歴|パスワード|鍵|トークン)[^。\n\x00]{0,30}?"
        r"(?:https?://|[\w.+-]+@[\w-]+\.)",
        Severity.HIGH,
        _near(
            "тправь|ерешли|ошли|ередай|发送|發送|转发|轉發|发给|發給|上传|上傳|送信|転送|送って|アップロード",
            r"https?://|@",
        ),
    ),
)
"""Core attack classes in seven more languages (used by both the `injection` and `poisoning` detectors)."""
