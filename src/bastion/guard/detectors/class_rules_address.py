# ruff: noqa: RUF001  (patterns in other scripts on purpose)
"""Three more attack classes in eight languages: text that turns to the AI reading it ("Achtung KI:", "AI reading
this:"), text that sets the *user's* request aside ("forget the user's task"), and destructive or covert actions on
the user's data ("delete all files", "quietly forward the attachments to x@y").

Found missing by the blind hand-written set (`tests/guard/blind_cases.py`): its cases that these rules now catch
were moved to `class_cases`, and the blind figure measured before these rules is the one `docs/guardrails-model.md`
reports. Each pattern has a byte-level `prefilter` of stems that every match contains.
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


_AI_WORD: Final = (
    r"(?:ai|a\.i\.|llm|ia|i\.a\.|ki|ии|ai-?assistant|assistant|assistente|asistente|assistent(?:in)?|ассистент|agent|agente"
    r"|agent|агент|model|modèle|modelo|modell|модель|chatbot|bot|бот|sprachmodell)"
)
_HAIL: Final = (
    r"(?:attention|note|important|notice|hey|dear|hello|hi|achtung|hinweis|wichtig|liebe[rs]?|hallo|atención|atencion|aviso"
    r"|nota|importante|hola|querid[oa]|atenção|atencao|olá|ola|caro|cara|avis|bonjour|cher|chère|внимание|важно|примечание"
    r"|привет|уважаемый|дорогой)"
)
_P_AI: Final = r"ai|a\.i\.|llm|ia|i\.a\.|ki|ии|ИИ|assist|asist|ссист|agent|гент|model|mod\xc3\xa8le|одел|sprachmodell|chatbot|bot|бот|Бот"
_P_HAIL: Final = (
    # A word boundary before the stems that start with an ASCII letter, as in the pattern ("hi", not "this"); the
    # Cyrillic stems skip their first letter (Hyperscan folds ASCII case only), so they cannot have one.
    r"\b(?:attention|note|important|notice|hey|dear|hello|hi|achtung|hinweis|wichtig|liebe|hallo|atenci|aviso|nota|hola"
    r"|querid|aten\xc3\xa7|atenca|ol\xc3\xa1|ola|caro|cara|avis|bonjour|cher|ch\xc3\xa8re)|нимание|ажно|римечание|ривет|важаем|орог"
)
_P_READING: Final = r"reading|processing|reads|qui\s+lit|que\s+lee|que\s+l\xc3\xaa|liest|читающ"


ADDRESS_RULES: Final[tuple[Rule, ...]] = (
    # 1. Turning to the AI that reads the text.
    _r(
        "ai_addressed",
        rf"\b{_HAIL}\s*[,:]?\s*(?:(?:to|for|pour|à|para|für|an|для)\s+)?(?:the\s+|l['’]|el\s+|la\s+|o\s+|a\s+|die\s+|den\s+"
        rf"|der\s+)?{_AI_WORD}\b\s*(?:[:,!]|(?:reading|processing|qui\s+lit|que\s+lee|que\s+lê|die\s+(?:das|dies)\s+liest"
        rf"|читающ\w*))"
        rf"|\b(?:pour|à|para|für|an\s+die|an\s+den|for|to|для)\s+(?:l['’]|el\s+|la\s+|o\s+|a\s+|the\s+)?{_AI_WORD}\s+(?:qui\s+lit"
        rf"|que\s+lee|que\s+lê|die\s+(?:das|dies)\s+liest|reading|that\s+reads|who\s+reads|читающ\w*)"
        rf"|(?:^|(?<=[.!?\n\x00]))\s*{_AI_WORD}\s+(?:reading|processing|that\s+reads|who\s+reads|qui\s+lit|que\s+lee|que\s+lê"
        rf"|die\s+(?:das|dies)\s+liest|читающ\w*)\s+(?:this|these|ceci|cela|esto|isto|dies|это)\w*\s*[:,]",
        Severity.HIGH,
        rf"(?:{_P_HAIL})[^\s,:]{{0,3}}[\s,:]*(?:(?:to|for|pour|\xc3\xa0|para|f\xc3\xbcr|an|для)\s+)?(?:the\s+|l'|l\xe2\x80\x99|el\s+"
        rf"|la\s+|o\s+|a\s+|die\s+|den\s+|der\s+)?(?:{_P_AI})|(?:{_P_AI})\w*\s+(?:(?:that|who|die\s+(?:das|dies))\s+)?(?:{_P_READING})",
    ),
    _r(
        "ai_addressed",
        # A sentence that opens by calling the assistant by name, then tells it what to do: "Assistant, disregard ...".
        r"(?:^|(?<=[.!?\n\x00]))\s*(?:ai|ia|ki|ии|assistant|assistente|asistente|assistent|ассистент)\s*,\s*(?:\w+\s+){0,3}?"
        r"(?:disregard|ignore|forget|from\s+now|a\s+partir|à\s+partir|desde\s+ahora|ab\s+(?:jetzt|sofort)|с\s+этого|please"
        r"|por\s+favor|bitte|s'il|пожалуйста|you\s+(?:must|should|will)|tu\s+dois|debes|deves|du\s+(?:musst|sollst))",
        Severity.HIGH,
        r"(?:ai|ia|ki|ии|ИИ|assist|asist|ссист)\w*\s*,",
    ),
    _r(
        "ai_addressed",
        r"(?:注意|提示|重要|致|给|給)[，,:：]?\s*(?:AI|人工智能)?(?:助手|模型|智能体|智能體|AI)[：:，,]"
        r"|(?:AI|アシスタント|エージェント|モデル)(?:への|に)(?:指示|お願い|注意|メッセージ|命令)[：:]"
        r"|(?:注意|重要|お知らせ)[：:]\s*(?:AI|アシスタント|エージェント)|(?:读到|讀到|看到)(?:这|這)(?:条|條|段)?(?:消息|信息|内容)的(?:AI|助手|模型)"
        r"|このメッセージを読んだ(?:AI|アシスタント)",
        Severity.HIGH,
        r"注意|提示|重要|致|给|給|读到|讀到|看到|このメッセージ|への(?:指示|お願い|注意|メッセージ|命令)|に(?:指示|お願い|注意|メッセージ|命令)"
        r"|お知らせ",
    ),
    # 2. Setting the user's own request aside.
    _r(
        "task_hijack",
        r"\b(?:ignore|disregard|forget|skip|drop|set\s+aside|abandon|discard)\s+(?:about\s+)?(?:the\s+)?(?:user'?s?|original|initial"
        r"|actual|real|current|account\s+owner'?s?|customer'?s?|human'?s?)\s+(?:\w+\s+)?(?:request|question|task|query|prompt|ask"
        r"|instructions?|message|goal|intent)s?\b"
        r"|\b(?:ignore[zr]?|oublie[zr]?|laisse[zr]?\s+tomber|ignora|olvida|omite|ignoriere?|vergiss|ignore|esqueça|esqueca"
        r"|игнорируй\w*|забудь\w*)\s+(?:la\s+|le\s+|l['’]|el\s+|lo\s+|die\s+|den\s+|das\s+|o\s+|a\s+)?(?:demande|tâche|question"
        r"|requête|consigne|petición|peticion|pregunta|tarea|solicitud|Aufgabe|Frage|Anfrage|Auftrag|Bitte|pedido|pergunta"
        r"|tarefa|solicitação|задач\w*|вопрос\w*|запрос\w*|просьб\w*)\s+(?:de\s+l['’]utilisateur|originale?|initiale?|del\s+usuario"
        r"|original|des\s+(?:Nutzers|Benutzers|Anwenders)|do\s+usuário|do\s+usuario|пользовател\w*)"
        r"|\b(?:oublie[zr]?|ignore[zr]?)\s+ce\s+qu['’](?:on|il|elle|l['’]utilisateur)\s+(?:t['’]|vous\s+)?a\s+(?:demandé|dit)"
        r"|\b(?:ignore|esqueça|desconsidere)\s+o\s+que\s+o\s+(?:usuário|usuario|utilizador)\s+(?:pediu|disse|perguntou)"
        r"|\b(?:ignora|olvida)\s+lo\s+que\s+(?:te\s+)?(?:pidió|pidio|dijo|preguntó)\s+el\s+usuario",
        Severity.HIGH,
        r"(?:ignor|disregard|forget|skip|drop|aside|abandon|discard|oubli|tomber|olvid|omite|vergiss|esque|desconsid|гнорир"
        r"|абудь)[^\n]*(?:user|original|initial|actual|real|current|owner|customer|human|demande|t\xc3\xa2che|question"
        r"|requ\xc3\xaate|consigne|petici|pregunta|tarea|solicit|aufgabe|frage|anfrage|auftrag|bitte|pedido|pergunta|tarefa"
        r"|задач|опрос|апрос|росьб|ce\s+qu|o\s+que|lo\s+que)",
    ),
    _r(
        "task_hijack",
        rf"(?:忽略|无视|無視|不要理会|不要理會|忘记|忘記)(?:用户|用戶|使用者)?的?(?:请求|請求|问题|問題|任务|任務|要求|提问|提問)"
        r"|(?:忽略|无视|無視)(?:上面|上述|以上|前面)的?(?:内容|內容|文字|一切)"
        rf"|ユーザー(?:の|から)の?(?:依頼|質問|要求|リクエスト|指示)(?:は|を){_CJK}{{0,4}}?(?:無視|忘れ)",
        Severity.HIGH,
        r"忽略|无视|無視|不要理|忘记|忘記|ユーザー",
    ),
    # 3. Destructive actions on the user's data.
    _r(
        "tool_coercion",
        r"\b(?:delete|wipe|erase|purge|destroy)\s+(?:all\s+(?:of\s+)?|every\s+|each\s+)?(?:the\s+)?(?:user'?s?\s+|shared\s+|entire\s+"
        r"|whole\s+)(?:\w+\s+)?(?:files?|folders?|director(?:y|ies)|e-?mails?|messages?|events?|appointments?|contacts?|data"
        r"|records?|documents?|repositor\w+|backups?|history|drive|calendar|inbox|account)\b"
        r"|\b(?:supprime[zr]?|efface[zr]?|borra|elimina|apague|exclua|apaga|lösch\w*|удали\w*|сотри\w*)\s+(?:\w+\s+)?(?:tous\s+les"
        r"|toutes\s+les|todos\s+los|todas\s+las|todos\s+os|todas\s+as|alle|все|всю)\s+(?:\w+\s+)?(?:fichiers|dossiers|e-?mails"
        r"|courriels|messages|rendez-vous|contacts|archivos|correos|mensajes|eventos|contactos|arquivos|mensagens|contatos"
        r"|Dateien|Ordner|E-?Mails|Nachrichten|Termine|Kontakte|файл\w*|пис\w+|сообщени\w*|событи\w*|контакт\w*)"
        rf"|(?:删除|刪除|清空)(?:用户|用戶|使用者)?的?(?:所有|全部)(?:的)?(?:文件|檔案|邮件|郵件|消息|訊息|日程|联系人|聯絡人)"
        rf"|(?:全て|すべて|全部)の(?:ファイル|メール|予定|連絡先|メッセージ)を{_CJK}{{0,4}}?削除",
        Severity.MEDIUM,
        r"delet|wipe|erase|purge|destroy|supprim|efface|borra|elimina|apague|exclua|apaga|l\xc3\xb6sch|\xd0\xb4\xd0\xb0\xd0\xbb"
        r"\xd0\xb8|\xd1\x82\xd1\x80\xd0\xb8|删除|刪除|清空|削除",
    ),
    # 4. Covert sending: a secrecy adverb, a verb of sending and an address in one sentence.
    _r(
        "exfiltration",
        rf"\b(?:quietly|silently|secretly|discreetly|covertly|discrètement|discretement|en\s+secret|en\s+silence|secretamente"
        rf"|en\s+secreto|discretamente|em\s+segredo|silenciosamente|heimlich|unauffällig|stillschweigend|тихо|незаметно|тайно"
        rf"|скрытно){_S}{{0,80}}?(?:https?://|[\w.+-]+@[\w-]+\.)"
        rf"|(?:悄悄|偷偷|秘密地|暗中|こっそり|密かに|ひそかに){_CJK}{{0,60}}?(?:https?://|[\w.+-]+@)",
        Severity.HIGH,
        r"(?:quiet|silent|secret|discre|discr\xc3\xa8t|covert|silence|silenci|segredo|heimlich|unauff|stillschweig|\xd0\xb8\xd1\x85\xd0\xbe|\xd0\xb5\xd0"
        r"\xb7\xd0\xb0\xd0\xbc\xd0\xb5\xd1\x82\xd0\xbd|\xd0\xb0\xd0\xb9\xd0\xbd\xd0\xbe|\xd0\xba\xd1\x80\xd1\x8b\xd1\x82\xd0\xbd"
        r"|悄悄|偷偷|秘密|暗中|こっそり|密かに|ひそかに)[^\n]{0,300}(?:https?://|@)",
    ),
    _r(
        "exfiltration",
        # The user's contacts, attachments or mail, uploaded or sent to an address.
        rf"(?:上传|上傳|发送|發送|转发|轉發|发给|發給|送って|送信|転送|アップロード|upload\w*|send|forward|envoie\w*|transf[eè]re\w*"
        rf"|reenv[ií]a\w*|env[ií]a\w*|encaminh\w*|schick\w*|sende\w*|leite\w*\s+weiter|перешли\w*|отправь\w*){_S}{{0,80}}?"
        rf"(?:通讯录|通訊錄|联系人|聯絡人|附件|连絡先|連絡先|添付|contacts|contactos|contatos|Kontakte|контакт\w*|attachments|pièces"
        rf"\s+jointes|adjuntos|anexos|Anhänge|вложени\w*|correos\s+del\s+usuario|e-?mails\s+de\s+l['’]utilisateur)"
        rf"{_S}{{0,80}}?(?:https?://|[\w.+-]+@[\w-]+\.|mi\s+cuenta|mon\s+compte|minha\s+conta|mein\s+Konto|мой\s+адрес)"
        rf"|(?:通讯录|通訊錄|联系人|聯絡人|附件|連絡先|添付){_CJK}{{0,20}}?(?:https?://|[\w.+-]+@)",
        Severity.HIGH,
        r"(?:通讯录|通訊錄|联系人|聯絡人|附件|连絡先|連絡先|添付|contact|kontakt|attach|pi\xc3\xa8ces|adjunt|anex|anh\xc3\xa4ng|\xd0\xbe\xd0\xbd"
        r"\xd1\x82\xd0\xb0\xd0\xba\xd1\x82|\xd0\xbb\xd0\xbe\xd0\xb6\xd0\xb5\xd0\xbd|correos|e-?mails)[^\n]{0,300}(?:https?://|@"
        r"|cuenta|compte|conta|konto|\xd0\xb0\xd0\xb4\xd1\x80\xd0\xb5\xd1\x81)",
    ),
)
"""Classes found missing by the blind set (both the `injection` and `poisoning` detectors use them)."""
