"""The words of consent: STOP (and the like) opts a person out of bot messages, START back in.

A keyword counts only as the whole message (case, accents and trailing punctuation ignored):
"stop" opts out, "please stop the delivery" is an ordinary message for the model.
"""

from __future__ import annotations

import string
import unicodedata

# Carrier and WhatsApp-business conventions in the languages customers write in; each maps to the
# language of its confirmation.
OPT_OUT_KEYWORDS = {
    "stop": "en",
    "stopall": "en",
    "unsubscribe": "en",
    "cancel": "en",
    "end": "en",
    "quit": "en",
    "optout": "en",
    "opt out": "en",
    "revoke": "en",
    "baja": "es",
    "darse de baja": "es",
    "parar": "es",
    "cancelar": "es",
    "arret": "fr",
    "arreter": "fr",
    "desabonner": "fr",
    "desinscrire": "fr",
    "stopp": "de",
    "abmelden": "de",
    "abbestellen": "de",
    "kundigen": "de",
    "basta": "it",
    "disiscriviti": "it",
    "cancelar inscricao": "pt",
    "sair": "pt",
}
OPT_IN_KEYWORDS = {"start": "en", "unstop": "en", "resume": "en", "alta": "es", "demarrer": "fr"}

OPT_OUT_CONFIRMATIONS = {
    "en": "You will receive no more automatic messages from us. Reply START to resume.",
    "es": "No recibirás más mensajes automáticos nuestros. Responde START para volver a recibirlos.",
    "fr": "Vous ne recevrez plus de messages automatiques de notre part. Répondez START pour reprendre.",
    "de": "Sie erhalten keine automatischen Nachrichten mehr von uns. Antworten Sie START, um fortzufahren.",
    "it": "Non riceverai più messaggi automatici da noi. Rispondi START per riprendere.",
    "pt": "Você não receberá mais mensagens automáticas nossas. Responda START para voltar a recebê-las.",
}
OPT_IN_CONFIRMATIONS = {
    "en": "Welcome back! You will receive our automatic messages again. Reply STOP to stop them.",
    "es": "¡Bienvenido de nuevo! Volverás a recibir nuestros mensajes automáticos. Responde STOP para pararlos.",
    "fr": "Bon retour ! Vous recevrez à nouveau nos messages automatiques. Répondez STOP pour les arrêter.",
}


def normalize_keyword(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.strip().strip(string.punctuation + "¡¿ ").split())


def opt_out_language(text: str) -> str | None:
    return OPT_OUT_KEYWORDS.get(normalize_keyword(text))
