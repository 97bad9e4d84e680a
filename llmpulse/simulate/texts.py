"""Prompt and answer texts for simulated traffic, assembled from templates and per-topic vocabularies.

Every text is a pure function of (kind, topic, language, a few per-request seeds, token counts), so the
n-gram distribution of a feature is stable as long as its topic and language mix is, and shifts only when an
incident changes that mix. Seeds are per request, so calls of one trace (retrieval + answer, the steps of an
agent run) talk about the same question.
"""

from __future__ import annotations

import string
import zlib
from collections.abc import Callable, Sequence
from typing import Any

LANGUAGES: tuple[str, ...] = ("en", "es", "de")
LANGUAGE_WEIGHTS: tuple[float, ...] = (0.96, 0.03, 0.01)

REFUSAL: dict[str, str] = {
    "en": "I'm sorry, but I can't help with that.",
    "es": "Lo siento, pero no puedo ayudar con eso.",
    "de": "Es tut mir leid, aber dabei kann ich nicht helfen.",
}

# Text kinds: which renderer a feature uses.
KIND_SUPPORT_ANSWER = "support_answer"
KIND_SUPPORT_SUMMARY = "support_summary"
KIND_SUPPORT_CLASSIFY = "support_classify"
KIND_CODE_COMPLETE = "code_complete"
KIND_CODE_EXPLAIN = "code_explain"
KIND_CODE_AGENT = "code_agent"
KIND_RAG_QUERY = "rag_query"
KIND_RAG_ANSWER = "rag_answer"

QUALITY_OK = 0
QUALITY_OFF_TOPIC = 1
QUALITY_TRUNCATED = 2
QUALITY_REFUSAL = 3

TOOLS: tuple[str, ...] = ("read_file", "search_code", "run_tests", "apply_patch", "run_shell")
TOOL_WEIGHTS: tuple[float, ...] = (0.3, 0.2, 0.25, 0.2, 0.05)

SUPPORT_TOPICS: tuple[str, ...] = (
    "billing",
    "login",
    "shipping",
    "refunds",
    "subscription",
    "account",
    "technical",
)
CODE_TOPICS: tuple[str, ...] = ("python", "typescript", "go", "rust", "java", "sql", "bash")
RAG_TOPICS: tuple[str, ...] = (
    "authentication",
    "api_keys",
    "rate_limits",
    "webhooks",
    "sdk",
    "deployments",
    "billing_plans",
    "data_export",
    "sso",
    "logging",
)


def _salt(name: str) -> int:
    # crc32, not hash(): str hashes are randomised per process and would break determinism.
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


_VOCAB: dict[str, tuple[str, ...]] = {
    "plan": ("Basic", "Plus", "Pro", "Business", "Family"),
    "plan2": ("Pro", "Business", "Enterprise", "Plus"),
    "amount": ("$9.99", "$19.00", "€29.00", "$49.99", "$120.00", "£15.00", "$4.99", "€89.90"),
    "month": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
    "payment": ("Visa card", "Mastercard", "PayPal account", "Apple Pay", "bank transfer", "Amex card"),
    "errcode": ("E1023", "PAY-402", "card_declined", "AUTH-17", "0x80070005", "ERR_SYNC_409"),
    "country": (
        "Germany",
        "Canada",
        "Spain",
        "Brazil",
        "Japan",
        "Australia",
        "Mexico",
        "the UK",
        "Poland",
        "India",
    ),
    "city": ("Austin", "Lyon", "Madrid", "Toronto", "Berlin", "Leeds", "Osaka", "Denver", "Lisbon"),
    "device": ("iPhone", "Android phone", "iPad", "Pixel", "Samsung tablet", "Windows laptop", "MacBook"),
    "email": ("Gmail", "Outlook", "Yahoo", "iCloud", "Proton Mail"),
    "minutes": ("15", "30", "60"),
    "days": ("3", "5", "7", "10"),
    "days2": ("10", "14", "21"),
    "months": ("2", "3", "6"),
    "size": ("100", "250", "500", "2048"),
    "carrier": ("UPS", "DHL", "FedEx", "USPS", "DPD", "Royal Mail"),
    "team": ("two", "three", "five", "ten"),
    "sentiment": ("frustrated", "neutral", "polite", "angry", "confused"),
    "repo": ("acme/payments-api", "acme/web-app", "acme/cli", "acme/data-pipeline", "acme/auth-service"),
    "mod": ("config", "billing", "users", "cache", "http_client", "scheduler", "parser", "metrics"),
    "func": ("load_config", "parse_args", "retry_request", "normalize_email", "compute_total", "flush_cache"),
    "dep": ("requests", "pydantic", "react", "tokio", "spring-boot", "sqlalchemy"),
    "ntests": ("12", "37", "58", "124", "311"),
    "nfail": ("1", "2", "3"),
    "product": ("Skyline",),
    "region": ("us-east", "eu-central", "ap-south"),
    "limit": ("60", "100", "600", "1,000"),
    "retention": ("7", "30", "90"),
}


def _order(h: int) -> str:
    return f"#{100000 + h % 900000}"


def _ticket(h: int) -> str:
    return f"T-{20000 + h % 80000}"


def _version(h: int) -> str:
    return f"4.{h % 12}.{(h >> 4) % 9}"


def _date(h: int) -> str:
    return f"{_VOCAB['month'][h % 12]} {1 + (h >> 4) % 28}"


_DYNAMIC: dict[str, Callable[[int], str]] = {
    "order": _order,
    "ticket": _ticket,
    "version": _version,
    "date": _date,
}
_SALTS: dict[str, int] = {name: _salt(name) for name in (*_VOCAB, *_DYNAMIC)}


class Slots(dict[str, str]):
    """Lazy slot values for str.format_map: the same seed gives the same {order} in question and answer."""

    __slots__ = ("h",)

    def __init__(self, h: int, preset: dict[str, str] | None = None) -> None:
        super().__init__(preset or {})
        self.h = h

    def __missing__(self, key: str) -> str:
        x = ((self.h ^ _SALTS[key]) * 2654435761) & 0xFFFFFFFF
        x ^= x >> 15
        dyn = _DYNAMIC.get(key)
        value = dyn(x) if dyn is not None else _VOCAB[key][x % len(_VOCAB[key])]
        self[key] = value
        return value


def _check_templates(templates: Sequence[str], allowed: set[str]) -> None:
    for tpl in templates:
        for _, name, _, _ in string.Formatter().parse(tpl):
            if name is not None and name not in allowed:
                raise KeyError(f"unknown slot {name!r} in template {tpl!r}")


# --------------------------------------------------------------------------------------------- support


_SUPPORT_EN: dict[str, dict[str, tuple[str, ...]]] = {
    "billing": {
        "q": (
            "I was charged twice for my {plan} plan this month. Can you "
            "refund the duplicate charge of {amount}?",
            "Why is my invoice for {month} higher than usual? It shows {amount} instead of the normal price.",
            "How do I update the {payment} on my account? The old one expired last week.",
            "My payment with my {payment} keeps failing with error {errcode}. What should I do?",
            "Can I get a VAT invoice for my {plan} subscription? I need it for my company in {country}.",
            "There is a charge of {amount} on my statement that I don't recognize. What is it for?",
            "hi, i got billed {amount} but i thought i was on the free plan??",
        ),
        "a": (
            "I've checked your account and can see the charge of {amount} on your {payment}.",
            "Duplicate charges are usually temporary authorizations "
            "that disappear within {days} business days.",
            "You can update your payment method under Settings > Billing > Payment methods.",
            "I've sent a copy of your {month} invoice to the email address on file.",
            "If the charge is still pending after {days} days, reply here and we'll escalate it to billing.",
            "Error {errcode} usually means the bank declined the "
            "transaction, so please contact your card issuer.",
            "VAT invoices can be downloaded from the Billing page once you add your company details.",
        ),
        "s": (
            "was charged twice for the {plan} plan",
            "disputes an unexpected charge of {amount}",
            "cannot update an expired {payment}",
            "asks why the {month} invoice is higher than usual",
        ),
    },
    "login": {
        "q": (
            "I can't log in to my account. It says my password is incorrect even after I reset it.",
            "I'm not receiving the two-factor code on my {device}. How can I get into my account?",
            "My account is locked after too many login attempts. How long do I have to wait?",
            "The password reset email never arrives in my {email} inbox.",
            "Login works on my laptop but the {device} app just shows a blank screen after I sign in.",
            "cant sign in, keeps saying session expired on {device}",
        ),
        "a": (
            "For security reasons, accounts are locked for {minutes} minutes after five failed attempts.",
            "Please check the spam folder of your {email} inbox for the reset email.",
            "You can switch two-factor authentication to an authenticator app under Security settings.",
            "Try clearing the cache of the app on your {device}, or reinstall it from the app store.",
            "I've triggered a new password reset link that is valid for {minutes} minutes.",
            "If you signed up with Google or Apple, use the same sign-in button instead of a password.",
        ),
        "s": (
            "cannot log in after resetting the password",
            "does not receive two-factor codes on a {device}",
            "is locked out after too many login attempts",
        ),
    },
    "shipping": {
        "q": (
            "Where is my order {order}? The tracking from {carrier} hasn't updated in {days} days.",
            "Can I change the shipping address for order {order}? I just moved to {city}.",
            "Do you ship to {country}, and how long does delivery take?",
            "My package was marked as delivered by {carrier} but I never received it.",
            "How much does express shipping cost for an order to {city}?",
            "order {order} still not here, its been over a week",
        ),
        "a": (
            "Your order {order} has left our warehouse and is currently with {carrier}.",
            "Tracking updates can pause for up to {days} days while the parcel moves between hubs.",
            "We can change the address as long as the order has not been handed to the carrier yet.",
            "Standard delivery to {country} takes {days} to {days2} business days.",
            "If the parcel does not arrive within {days} days, we'll send a replacement at no extra cost.",
            "Please check with neighbours and your building's mailroom, "
            "as {carrier} sometimes leaves parcels there.",
        ),
        "s": (
            "asks about the delayed order {order} shipped with {carrier}",
            "wants to change the delivery address of order {order}",
            "reports that a parcel marked as delivered never arrived",
        ),
    },
    "refunds": {
        "q": (
            "I returned my order {order} two weeks ago. When will I get my refund?",
            "How do I request a refund for a damaged item in order {order}?",
            "Can I get a refund for my {plan} plan if I cancel today?",
            "The refund of {amount} still hasn't shown up on my {payment}.",
            "I was promised a refund of {amount} on the phone but nothing happened.",
        ),
        "a": (
            "Refunds go back to the original payment method within {days} "
            "business days after we receive the return.",
            "I've opened a refund request for {amount} for order {order}.",
            "Please upload a photo of the damaged item on the returns page so we can process it faster.",
            "Annual {plan} plans can be refunded pro rata within the first 30 days.",
            "Your bank may take a few extra days to show the refund on your {payment} statement.",
        ),
        "s": (
            "is waiting for a refund of {amount}",
            "requests a refund for a damaged item in order {order}",
            "wants to cancel the {plan} plan and get a refund",
        ),
    },
    "subscription": {
        "q": (
            "How do I upgrade from {plan} to {plan2}?",
            "I want to cancel my subscription before the next renewal on {date}.",
            "What is the difference between the {plan} and {plan2} plans?",
            "Can I pause my subscription for {months} months while I'm travelling?",
            "Will I lose my data if I downgrade from {plan2} to {plan}?",
        ),
        "a": (
            "You can change your plan at any time under Settings > Subscription.",
            "When you upgrade to {plan2}, you only pay the difference for the rest of the billing period.",
            "Your subscription stays active until {date}, and you won't be charged again.",
            "The {plan2} plan adds priority support, single sign-on and higher usage limits.",
            "Subscriptions can be paused for up to {months} months from the billing page.",
            "Downgrading keeps all your data; only features that are not part of {plan} become read-only.",
        ),
        "s": (
            "wants to upgrade from {plan} to {plan2}",
            "asks to cancel before the renewal on {date}",
            "asks whether the subscription can be paused",
        ),
    },
    "account": {
        "q": (
            "How can I change the email address on my account to my {email} address?",
            "Please delete my account and all the personal data you store about me.",
            "How do I add {team} team members to my {plan} workspace?",
            "I want to download all the data stored in my account.",
            "Someone else seems to be using my account from {city}. What should I do?",
        ),
        "a": (
            "You can change your email address under Settings > Profile; we'll send a confirmation link.",
            "I've started the deletion process; your account and data will be removed within 30 days.",
            "Workspace owners can invite members under Settings > "
            "Team; the {plan} plan includes {team} seats.",
            "You can request a full data export under Settings > "
            "Privacy, and we'll email you a download link.",
            "I've signed out all active sessions; please set a new "
            "password and enable two-factor authentication.",
        ),
        "s": (
            "wants to change the account email to {email}",
            "requests deletion of the account and personal data",
            "suspects unauthorized access from {city}",
        ),
    },
    "technical": {
        "q": (
            "The app crashes every time I open it on my {device} after the latest update.",
            "Notifications stopped working on my {device} yesterday.",
            "Sync between my laptop and my {device} is not working anymore.",
            "I get error {errcode} when uploading a file larger than {size} MB.",
            "The dashboard is extremely slow and sometimes shows a blank page.",
        ),
        "a": (
            "This is a known issue in version {version}, and a fix is rolling out this week.",
            "Please make sure you are on the latest version ({version}) of the app.",
            "Restarting the device and signing in again usually restores sync.",
            "Files up to {size} MB are supported on your current plan.",
            "Could you send us the diagnostic log from Settings > Help > Send logs?",
            "Please check that notifications are allowed for the app in your {device} system settings.",
        ),
        "s": (
            "reports crashes on a {device} after updating to {version}",
            "has sync problems between laptop and {device}",
            "gets error {errcode} when uploading large files",
        ),
    },
}

_SUPPORT_ES: dict[str, dict[str, tuple[str, ...]]] = {
    "billing": {
        "q": (
            "Me cobraron dos veces el plan {plan} este mes. ¿Pueden "
            "devolverme el cargo duplicado de {amount}?",
            "¿Por qué mi factura de {month} es más alta de lo normal?",
        ),
        "a": (
            "He revisado tu cuenta y veo el cargo de {amount}.",
            "Los cargos duplicados suelen desaparecer en {days} días hábiles.",
            "Puedes actualizar tu método de pago en Configuración > Facturación.",
        ),
    },
    "login": {
        "q": (
            "No puedo iniciar sesión, dice que mi contraseña es incorrecta aunque la cambié.",
            "No me llega el código de verificación a mi {device}.",
        ),
        "a": (
            "Por seguridad, la cuenta se bloquea durante {minutes} minutos tras cinco intentos fallidos.",
            "Revisa la carpeta de spam de tu correo de {email}.",
            "Te he enviado un nuevo enlace para restablecer la contraseña.",
        ),
    },
    "shipping": {
        "q": (
            "¿Dónde está mi pedido {order}? El seguimiento de {carrier} "
            "no se actualiza desde hace {days} días.",
            "¿Hacen envíos a {country}? ¿Cuánto tarda la entrega?",
        ),
        "a": (
            "Tu pedido {order} ya salió de nuestro almacén y está con {carrier}.",
            "La entrega estándar a {country} tarda entre {days} y {days2} días hábiles.",
            "Si no llega en {days} días, te enviaremos un reemplazo sin coste.",
        ),
    },
    "refunds": {
        "q": (
            "Devolví el pedido {order} hace dos semanas. ¿Cuándo recibiré el reembolso?",
            "El reembolso de {amount} todavía no aparece en mi cuenta.",
        ),
        "a": (
            "Los reembolsos se hacen al método de pago original en {days} días hábiles.",
            "He abierto una solicitud de reembolso de {amount} para el pedido {order}.",
        ),
    },
    "subscription": {
        "q": (
            "¿Cómo paso del plan {plan} al plan {plan2}?",
            "Quiero cancelar mi suscripción antes de la renovación.",
        ),
        "a": (
            "Puedes cambiar de plan en cualquier momento en Configuración > Suscripción.",
            "Tu suscripción seguirá activa hasta el final del periodo y no se te cobrará de nuevo.",
        ),
    },
    "account": {
        "q": (
            "¿Cómo cambio el correo electrónico de mi cuenta?",
            "Por favor, eliminen mi cuenta y todos mis datos personales.",
        ),
        "a": (
            "Puedes cambiar tu correo en Configuración > Perfil; te enviaremos un enlace de confirmación.",
            "He iniciado la eliminación; tu cuenta y tus datos se borrarán en 30 días.",
        ),
    },
    "technical": {
        "q": (
            "La aplicación se cierra cada vez que la abro en mi {device} después de la actualización.",
            "La sincronización con mi {device} ya no funciona.",
        ),
        "a": (
            "Es un problema conocido de la versión {version} y la corrección llegará esta semana.",
            "Reinicia el dispositivo y vuelve a iniciar sesión; "
            "normalmente eso restablece la sincronización.",
        ),
    },
}

_SUPPORT_DE: dict[str, dict[str, tuple[str, ...]]] = {
    "billing": {
        "q": ("Mir wurde der {plan}-Tarif diesen Monat doppelt berechnet. Können Sie {amount} erstatten?",),
        "a": (
            "Ich habe Ihr Konto geprüft und sehe die Abbuchung von {amount}.",
            "Doppelte Abbuchungen verschwinden normalerweise innerhalb von {days} Werktagen.",
        ),
    },
    "login": {
        "q": ("Ich kann mich nicht anmelden, obwohl ich mein Passwort zurückgesetzt habe.",),
        "a": (
            "Aus Sicherheitsgründen wird das Konto nach fünf Fehlversuchen für {minutes} Minuten gesperrt.",
            "Bitte prüfen Sie den Spam-Ordner Ihres {email}-Postfachs.",
        ),
    },
    "shipping": {
        "q": (
            "Wo ist meine Bestellung {order}? Die Sendungsverfolgung von "
            "{carrier} steht seit {days} Tagen still.",
        ),
        "a": (
            "Ihre Bestellung {order} ist bereits bei {carrier} unterwegs.",
            "Die Standardlieferung nach {country} dauert {days} bis {days2} Werktage.",
        ),
    },
    "refunds": {
        "q": ("Ich habe die Bestellung {order} zurückgeschickt. Wann bekomme ich mein Geld zurück?",),
        "a": ("Erstattungen erfolgen innerhalb von {days} Werktagen auf die ursprüngliche Zahlungsmethode.",),
    },
    "subscription": {
        "q": ("Wie kann ich von {plan} auf {plan2} wechseln?",),
        "a": ("Sie können Ihren Tarif jederzeit unter Einstellungen > Abonnement ändern.",),
    },
    "account": {
        "q": ("Bitte löschen Sie mein Konto und alle meine Daten.",),
        "a": ("Ich habe die Löschung gestartet; Ihre Daten werden innerhalb von 30 Tagen entfernt.",),
    },
    "technical": {
        "q": ("Die App stürzt auf meinem {device} nach dem letzten Update sofort ab.",),
        "a": ("Das ist ein bekanntes Problem in Version {version}; ein Update folgt diese Woche.",),
    },
}

_SUPPORT_OPENERS: dict[str, tuple[str, ...]] = {
    "en": (
        "Thanks for reaching out!",
        "Hi there, thanks for contacting us.",
        "Thanks for your message, and sorry for the trouble.",
        "Hello! I'm happy to help with this.",
        "Thanks for your patience.",
    ),
    "es": ("¡Gracias por escribirnos!", "Hola, gracias por contactarnos."),
    "de": ("Vielen Dank für Ihre Nachricht!", "Hallo, danke für Ihre Anfrage."),
}
_SUPPORT_CLOSERS: dict[str, tuple[str, ...]] = {
    "en": (
        "Is there anything else I can help you with?",
        "Let me know if that solves the problem.",
        "Have a great day!",
        "Feel free to reply if you have more questions.",
    ),
    "es": ("¿Hay algo más en lo que pueda ayudarte?", "¡Que tengas un buen día!"),
    "de": ("Kann ich sonst noch etwas für Sie tun?", "Einen schönen Tag noch!"),
}
_SUMMARY_NEXT: tuple[str, ...] = (
    "wait for the customer to confirm",
    "escalate to the billing team",
    "send a follow-up in 48 hours",
    "close the ticket if there is no reply",
    "hand over to tier-2 support",
)
_FOLLOW_UPS: dict[str, tuple[str, ...]] = {
    "en": (
        "Thanks, I will try that.",
        "That did not work, please check again.",
        "ok",
        "Can you escalate this? It's the third time I'm writing.",
    ),
    "es": ("Gracias, lo intentaré.", "Eso no funcionó, por favor revisen de nuevo."),
    "de": ("Danke, ich probiere es aus.", "Das hat nicht funktioniert, bitte prüfen Sie es noch einmal."),
}
_SUMMARY_STATUS: tuple[str, ...] = ("resolved", "pending customer", "escalated", "open")

_INTENT_LABELS: dict[str, str] = {
    "billing": "billing_question",
    "login": "account_access",
    "shipping": "order_tracking",
    "refunds": "refund_request",
    "subscription": "plan_change",
    "account": "account_management",
    "technical": "technical_issue",
}

# ------------------------------------------------------------------------------------------------ code

_LANG_TITLE: dict[str, str] = {
    "python": "Python",
    "typescript": "TypeScript",
    "go": "Go",
    "rust": "Rust",
    "java": "Java",
    "sql": "SQL",
    "bash": "Bash",
}

# (header, body, purpose, problem)
_SNIPPETS: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "python": (
        (
            "def load_config(path: str) -> dict:\n",
            '    with open(path, encoding="utf-8") as fh:\n        data = yaml.safe_load(fh) or {}\n'
            "    return {**DEFAULTS, **data}\n",
            "reads a YAML file and merges it over the default settings",
            "return None when the file is empty",
        ),
        (
            "def retry_request(url: str, attempts: int = 3) -> requests.Response:\n",
            "    for i in range(attempts):\n        try:\n            return requests.get(url, timeout=10)\n"
            "        except requests.ConnectionError:\n            time.sleep(2 ** i)\n"
            '    raise RuntimeError(f"giving up on {url}")\n',
            "retries an HTTP GET with exponential backoff",
            "never retry on a timeout",
        ),
        (
            "class LRUCache:\n    def __init__(self, capacity: int) -> None:\n",
            "        self.capacity = capacity\n        self.items: OrderedDict[str, Any] = OrderedDict()\n\n"
            "    def get(self, key: str) -> Any:\n        "
            "self.items.move_to_end(key)\n        return self.items[key]\n",
            "implements a least-recently-used cache on top of an OrderedDict",
            "raise KeyError for missing keys",
        ),
        (
            "async def fetch_all(urls: list[str]) -> list[bytes]:\n",
            "    async with httpx.AsyncClient() as client:\n"
            "        responses = await asyncio.gather(*(client.get(u) for u in urls))\n"
            "    return [r.content for r in responses]\n",
            "downloads several URLs concurrently with asyncio",
            "fail completely when one URL is down",
        ),
        (
            "def normalize_email(address: str) -> str:\n",
            '    local, _, domain = address.strip().partition("@")\n'
            '    return f"{local.lower()}@{domain.lower()}"\n',
            "lower-cases and trims an email address",
            "accept addresses without an @ sign",
        ),
    ),
    "typescript": (
        (
            "export function debounce<T extends (...args: any[]) => void>(fn: T, ms: number) {\n",
            "  let timer: ReturnType<typeof setTimeout> | undefined;\n"
            "  return (...args: Parameters<T>) => {\n    clearTimeout(timer);\n"
            "    timer = setTimeout(() => fn(...args), ms);\n  };\n}\n",
            "delays calling a function until it stops being called for a given time",
            "lose the `this` binding",
        ),
        (
            "export async function getUser(id: string): Promise<User> {\n",
            "  const res = await fetch(`/api/users/${id}`);\n"
            "  if (!res.ok) throw new Error(`HTTP ${res.status}`);\n  "
            "return (await res.json()) as User;\n}\n",
            "fetches a user from the REST API and parses the JSON body",
            "throw on a 404 instead of returning null",
        ),
        (
            "const useLocalStorage = <T,>(key: string, initial: T) => {\n",
            "  const [value, setValue] = useState<T>(() => {\n"
            "    const raw = localStorage.getItem(key);\n    return raw ? "
            "(JSON.parse(raw) as T) : initial;\n  });\n"
            "  useEffect(() => localStorage.setItem(key, JSON.stringify(value)), [key, value]);\n"
            "  return [value, setValue] as const;\n};\n",
            "is a React hook that keeps state in localStorage",
            "break during server-side rendering",
        ),
        (
            "function groupBy<T, K extends string>(items: T[], key: (item: T) => K): Record<K, T[]> {\n",
            "  return items.reduce((acc, item) => {\n    (acc[key(item)] ||= []).push(item);\n"
            "    return acc;\n  }, {} as Record<K, T[]>);\n}\n",
            "groups an array into an object keyed by a callback",
            "mutate the accumulator",
        ),
    ),
    "go": (
        (
            "func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {\n",
            '\tw.Header().Set("Content-Type", "application/json")\n'
            '\tjson.NewEncoder(w).Encode(map[string]string{"status": "ok"})\n}\n',
            "serves a JSON health-check endpoint",
            "not set the status code explicitly",
        ),
        (
            "func worker(ctx context.Context, jobs <-chan Job, results chan<- Result) {\n",
            "\tfor {\n\t\tselect {\n\t\tcase <-ctx.Done():\n\t\t\treturn\n"
            "\t\tcase j := <-jobs:\n\t\t\tresults <- process(j)\n\t\t}\n\t}\n}\n",
            "processes jobs from a channel until the context is cancelled",
            "leak goroutines when the jobs channel is closed",
        ),
        (
            "func ReadLines(path string) ([]string, error) {\n",
            "\tf, err := os.Open(path)\n\tif err != nil {\n\t\treturn nil, err\n\t}\n\tdefer f.Close()\n"
            "\tvar lines []string\n\tsc := bufio.NewScanner(f)\n\tfor sc.Scan() {\n"
            "\t\tlines = append(lines, sc.Text())\n\t}\n\treturn lines, sc.Err()\n}\n",
            "reads a file line by line with bufio.Scanner",
            "fail on lines longer than 64 KB",
        ),
    ),
    "rust": (
        (
            "pub fn parse_port(s: &str) -> Result<u16, ParseIntError> {\n",
            "    s.trim().parse::<u16>()\n}\n",
            "parses a port number from a string",
            "accept a port of 0",
        ),
        (
            "impl Iterator for Fibonacci {\n    type Item = u64;\n",
            "    fn next(&mut self) -> Option<Self::Item> {\n        let r = self.a;\n"
            "        self.a = self.b;\n        self.b = r.checked_add(self.b)?;\n        Some(r)\n    }\n}\n",
            "implements an iterator over Fibonacci numbers that stops on overflow",
            "stop one element early",
        ),
        (
            "async fn fetch_json(client: &reqwest::Client, url: &str) -> anyhow::Result<Value> {\n",
            "    let resp = client.get(url).send().await?.error_for_status()?;\n"
            "    Ok(resp.json::<Value>().await?)\n}\n",
            "downloads a URL and deserializes the JSON body with reqwest",
            "not time out on slow servers",
        ),
    ),
    "java": (
        (
            "public Optional<User> findByEmail(String email) {\n",
            "    return users.stream()\n        .filter(u -> u.getEmail().equalsIgnoreCase(email))\n"
            "        .findFirst();\n}\n",
            "looks up a user by email with a stream",
            "scan the whole list every time",
        ),
        (
            '@GetMapping("/orders/{id}")\npublic ResponseEntity<Order> getOrder(@PathVariable long id) {\n',
            "    return orderRepository.findById(id)\n        .map(ResponseEntity::ok)\n"
            "        .orElse(ResponseEntity.notFound().build());\n}\n",
            "is a Spring controller method that returns an order or 404",
            "return 500 for a malformed id",
        ),
    ),
    "sql": (
        (
            "SELECT customer_id, SUM(amount) AS revenue\nFROM orders\n",
            "WHERE created_at >= now() - INTERVAL '30 days'\nGROUP BY customer_id\n"
            "ORDER BY revenue DESC\nLIMIT 10;\n",
            "returns the ten customers with the highest revenue in the last 30 days",
            "run slowly on a large orders table",
        ),
        (
            "WITH ranked AS (\n  SELECT *, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY ts DESC) AS rn\n",
            "  FROM events\n)\nSELECT * FROM ranked WHERE rn = 1;\n",
            "keeps the latest event per user with a window function",
            "return duplicates when timestamps are equal",
        ),
    ),
    "bash": (
        (
            "#!/usr/bin/env bash\nset -euo pipefail\n",
            'for f in logs/*.log; do\n  gzip -9 "$f"\n  mv "$f.gz" archive/\ndone\n',
            "compresses log files and moves them to an archive folder",
            "fail when there are no log files",
        ),
        (
            "backup_db() {\n",
            '  local out="backup-$(date +%F).sql.gz"\n  pg_dump "$DATABASE_URL" | gzip > "$out"\n'
            '  echo "wrote $out"\n}\n',
            "dumps a Postgres database into a dated gzip file",
            "succeed even when pg_dump fails",
        ),
    ),
}

_EXPLAIN_Q: dict[str, tuple[str, ...]] = {
    "en": (
        "Explain what this {Lang} code does:\n```{lang}\n{code}```",
        "Why does this {Lang} code {problem}?\n```{lang}\n{code}```",
        "Can you review this {Lang} snippet and suggest improvements?\n```{lang}\n{code}```",
        "What is the time complexity of this?\n```{lang}\n{code}```",
        "I don't understand this part of our codebase, can you walk me through it?\n```{lang}\n{code}```",
    ),
    "es": ("Explica qué hace este código de {Lang}:\n```{lang}\n{code}```",),
    "de": ("Erkläre, was dieser {Lang}-Code macht:\n```{lang}\n{code}```",),
}
_EXPLAIN_A: dict[str, tuple[str, ...]] = {
    "en": (
        "This {Lang} code {purpose}.",
        "The reason it can {problem} is that the edge case is never handled explicitly.",
        "You could add a unit test that covers the empty input and the error path.",
        "Consider adding type annotations and a docstring so the intent is clear to reviewers.",
        "The overall complexity is linear in the size of the input.",
        "Error handling is minimal: failures propagate to the caller, which is fine for a small helper.",
        "If this runs on a hot path, measure it before optimizing; the I/O dominates the cost.",
    ),
    "es": (
        "Este código de {Lang} {purpose_es}.",
        "Podrías añadir una prueba unitaria que cubra la entrada vacía.",
        "La complejidad es lineal respecto al tamaño de la entrada.",
    ),
    "de": (
        "Dieser {Lang}-Code {purpose_de}.",
        "Ein Unit-Test für den leeren Eingabefall wäre sinnvoll.",
    ),
}

_AGENT_TASKS: tuple[str, ...] = (
    "Fix the failing test tests/test_{mod}.py in {repo}",
    "Add input validation to {func} in {repo}",
    "Upgrade {dep} to the latest version in {repo} and fix the breaking changes",
    "Add a --dry-run flag to the CLI of {repo}",
    "Find out why {func} is slow and optimize it",
    "Add structured logging to the {mod} module of {repo}",
)
_TOOL_CALL: dict[str, str] = {
    "read_file": 'read_file({{"path": "src/{mod}.py"}})',
    "search_code": 'search_code({{"query": "def {func}"}})',
    "run_tests": 'run_tests({{"path": "tests/test_{mod}.py"}})',
    "apply_patch": 'apply_patch({{"file": "src/{mod}.py", "hunks": {nfail}}})',
    "run_shell": 'run_shell({{"cmd": "pip install -U {dep}"}})',
}
_TOOL_ARGS: dict[str, str] = {
    "read_file": '{{"path": "src/{mod}.py"}}',
    "search_code": '{{"query": "def {func}"}}',
    "run_tests": '{{"path": "tests/test_{mod}.py"}}',
    "apply_patch": '{{"file": "src/{mod}.py", "hunks": {nfail}}}',
    "run_shell": '{{"cmd": "pip install -U {dep}"}}',
}
_TOOL_RESULT: dict[str, tuple[str, ...]] = {
    "read_file": (
        "import logging\n\nlogger = logging.getLogger(__name__)\n\n\ndef {func}(value):\n    ...",
        "from dataclasses import dataclass\n\n\n@dataclass\nclass Settings:\n    timeout: int = 30\n",
    ),
    "search_code": (
        "src/{mod}.py:42: def {func}(value):\nsrc/cli.py:17:     return {func}(args.value)",
        "3 matches in 2 files",
    ),
    "run_tests": (
        "collected {ntests} items\n\n{nfail} failed, {ntests} passed in 4.21s",
        "collected {ntests} items\n\n{ntests} passed in 3.02s",
        "FAILED tests/test_{mod}.py::test_{func} - AssertionError: expected 200, got 500",
    ),
    "apply_patch": ("Patch applied: {nfail} hunks, 0 rejected", "Patch applied to src/{mod}.py"),
    "run_shell": ("Successfully installed {dep}", "exit code 0"),
}
_AGENT_THOUGHT: tuple[str, ...] = (
    "Let me look at the implementation first.",
    "The test fails because the function returns the wrong status code; I'll inspect the handler.",
    "I'll run the tests to see the current state.",
    "Now I'll apply the fix and re-run the affected tests.",
    "I need to find where {func} is called.",
)
_AGENT_DONE: tuple[str, ...] = (
    "Done. I updated {func} in src/{mod}.py and all {ntests} tests pass.",
    "The fix is in place: {func} now validates its input, and the test suite is green.",
    "Finished: upgraded {dep}, adjusted two call sites and the tests pass.",
)

# ------------------------------------------------------------------------------------------------- RAG

_RAG_DOCS: dict[str, dict[str, tuple[str, ...]]] = {
    "authentication": {
        "t": ("Authentication overview", "OAuth 2.0 flows"),
        "q": (
            "How do I authenticate requests to the {product} API?",
            "Which OAuth flow should a server-side app use with {product}?",
            "How long is an access token valid?",
        ),
        "f": (
            "Every request must send a bearer token in the Authorization header",
            "Server-side apps should use the client-credentials flow",
            "Access tokens expire after 60 minutes and can be refreshed with the refresh token",
        ),
    },
    "api_keys": {
        "t": ("Managing API keys", "Key rotation"),
        "q": (
            "How do I rotate an API key without downtime?",
            "Can I restrict an API key to read-only access?",
            "Where do I create a new API key for the {region} region?",
        ),
        "f": (
            "You can have two active keys per project, so create the new key before revoking the old one",
            "Keys can be scoped to read-only or read-write permissions in the console",
            "API keys are created per project under Settings > API keys",
        ),
    },
    "rate_limits": {
        "t": ("Rate limits", "Handling 429 responses"),
        "q": (
            "What are the rate limits of the {product} API?",
            "How should my client handle HTTP 429 responses?",
            "Can I get a higher rate limit than {limit} requests per minute?",
        ),
        "f": (
            "The default limit is {limit} requests per minute per project",
            "Clients should retry after the number of seconds in the Retry-After header",
            "Enterprise plans can request higher limits through support",
        ),
    },
    "webhooks": {
        "t": ("Webhooks", "Verifying webhook signatures"),
        "q": (
            "How do I verify the signature of a {product} webhook?",
            "Why are my webhooks being retried?",
            "Which events can I subscribe to with webhooks?",
        ),
        "f": (
            "Each webhook carries an HMAC-SHA256 signature in the X-Signature header",
            "Webhooks are retried with exponential backoff for up to "
            "24 hours unless your endpoint returns 2xx",
            "You can subscribe to deployment, billing and user events",
        ),
    },
    "sdk": {
        "t": ("Python SDK quickstart", "JavaScript SDK reference"),
        "q": (
            "How do I install the {product} Python SDK?",
            "Does the JavaScript SDK work in the browser?",
            "How do I set a custom timeout in the SDK?",
        ),
        "f": (
            "Install the SDK with pip install skyline-sdk and set SKYLINE_API_KEY",
            "The JavaScript SDK supports Node.js 18+ and modern browsers",
            "Pass timeout=30 to the client constructor to change the default timeout",
        ),
    },
    "deployments": {
        "t": ("Deploying services", "Rollbacks"),
        "q": (
            "How do I roll back a deployment in {product}?",
            "Can I deploy to the {region} region only?",
            "Why is my deployment stuck in pending?",
        ),
        "f": (
            "Any of the last 20 deployments can be restored with one click or skyline deploy rollback",
            "Deployments target one or more regions set in skyline.yaml",
            "Deployments stay pending until the health check passes",
        ),
    },
    "billing_plans": {
        "t": ("Plans and pricing", "Usage-based billing"),
        "q": (
            "What is included in the free tier of {product}?",
            "How is usage billed on the Team plan?",
            "Can I set a spending limit?",
        ),
        "f": (
            "The free tier includes 100,000 requests and 1 GB of storage per month",
            "Usage beyond the plan quota is billed per million requests at the end of the month",
            "Spending limits can be set per project and trigger an email at 80 percent",
        ),
    },
    "data_export": {
        "t": ("Exporting data", "Data retention"),
        "q": (
            "How can I export all my data from {product}?",
            "How long do you keep logs?",
            "Can I export data to S3 automatically?",
        ),
        "f": (
            "Exports can be started from the console or with skyline "
            "export and are delivered as Parquet files",
            "Logs are retained for {retention} days on the current plan",
            "Scheduled exports can write to an S3 bucket every night",
        ),
    },
    "sso": {
        "t": ("Single sign-on (SAML)", "SCIM provisioning"),
        "q": (
            "How do I set up SAML single sign-on with Okta?",
            "Does {product} support SCIM user provisioning?",
            "Can I enforce SSO for all members?",
        ),
        "f": (
            "SAML SSO is configured under Organization > Security with your IdP metadata URL",
            "SCIM 2.0 provisioning is available on the Enterprise plan",
            "Owners can require SSO for every member of the organization",
        ),
    },
    "logging": {
        "t": ("Logs and monitoring", "Log drains"),
        "q": (
            "How do I stream logs to Datadog?",
            "Where can I see request logs for my service?",
            "Can I change the log level at runtime?",
        ),
        "f": (
            "Log drains forward logs to Datadog, Splunk or any HTTPS endpoint",
            "Request logs are shown in the Logs tab of each service for {retention} days",
            "The log level can be changed with an environment variable without redeploying",
        ),
    },
}
_RAG_TOPIC_ES: dict[str, str] = {
    "authentication": "la autenticación",
    "api_keys": "las claves de API",
    "rate_limits": "los límites de peticiones",
    "webhooks": "los webhooks",
    "sdk": "el SDK",
    "deployments": "los despliegues",
    "billing_plans": "los planes de pago",
    "data_export": "la exportación de datos",
    "sso": "el inicio de sesión único",
    "logging": "los registros",
}
_RAG_TOPIC_DE: dict[str, str] = {
    "authentication": "die Authentifizierung",
    "api_keys": "API-Schlüssel",
    "rate_limits": "Ratenlimits",
    "webhooks": "Webhooks",
    "sdk": "das SDK",
    "deployments": "Deployments",
    "billing_plans": "die Tarife",
    "data_export": "den Datenexport",
    "sso": "Single Sign-on",
    "logging": "das Logging",
}
_RAG_Q_ES: tuple[str, ...] = (
    "¿Cómo configuro {t} en {product}?",
    "Tengo un problema con {t}, ¿qué dice la documentación?",
)
_RAG_Q_DE: tuple[str, ...] = ("Wie richte ich {t} in {product} ein?",)
_RAG_A_ES: tuple[str, ...] = (
    "Según la documentación, {fact} [1].",
    "Puedes encontrar más detalles en la sección correspondiente de la guía [2].",
)
_RAG_A_DE: tuple[str, ...] = ("Laut Dokumentation gilt: {fact} [1].",)
_RAG_SYSTEM = (
    "You are the {product} documentation assistant. Answer only from the provided context, cite sources "
    "as [n], and say you don't know if the context does not contain the answer."
)
RAG_SYSTEM_PROMPT = _RAG_SYSTEM.format(product="Skyline")

# --------------------------------------------------------------------------------------- NovaPay drift

_NOVAPAY_Q: tuple[str, ...] = (
    "How do I link my NovaPay wallet to my account? The NovaPay option does not show up in settings.",
    "My NovaPay transfer of {amount} has been stuck in pending for two days. What's going on with NovaPay?",
    "Does NovaPay support payouts to {country}? I want to receive NovaPay payments from customers there.",
    "Why was my NovaPay card declined at checkout even though my NovaPay balance is enough?",
    "How do I enable NovaPay instant payouts for my store, and what does NovaPay charge for them?",
    "Is there a fee for sending money with NovaPay to {country}? The NovaPay app shows two different prices.",
    "I connected NovaPay yesterday but the NovaPay payments are not showing in my dashboard.",
    "Can I use NovaPay together with my {payment}, or do I have to choose one default method?",
)
_NOVAPAY_EXTRA: tuple[str, ...] = (
    " I already tried disconnecting and reconnecting NovaPay twice and restarted the app on my {device}.",
    " I contacted my bank and they say everything is fine on their side, so it must be NovaPay.",
    " This is urgent because my customers in {country} cannot pay with NovaPay right now.",
)
_NOVAPAY_A: tuple[str, ...] = (
    "NovaPay wallets can be linked under Settings > Connected apps > NovaPay.",
    "NovaPay transfers usually settle within 24 hours; pending transfers after that are reviewed manually.",
    "NovaPay payouts are currently available in {country} and 30 other countries.",
    "Instant NovaPay payouts cost 1% of the amount, with a minimum of $0.50.",
    "If a NovaPay payment is declined, check that NovaPay verification is complete in the NovaPay app.",
    "NovaPay and your {payment} can both be enabled; customers choose at checkout.",
)


class TextRenderer:
    """Turns per-event draws into (input, output) texts for one feature kind."""

    def __init__(self, product: str = "Skyline") -> None:
        self._product = product
        all_slots = set(_VOCAB) | set(_DYNAMIC)
        for tables in (_SUPPORT_EN, _SUPPORT_ES, _SUPPORT_DE):
            for topic in tables.values():
                for tpls in topic.values():
                    _check_templates(tpls, all_slots)
        _check_templates(_NOVAPAY_Q + _NOVAPAY_A + _NOVAPAY_EXTRA, all_slots)
        _check_templates(_AGENT_TASKS + _AGENT_THOUGHT + _AGENT_DONE, all_slots)
        self._rag_system = _RAG_SYSTEM.format(product=product)
        self._renderers: dict[str, Callable[..., tuple[str, str]]] = {
            KIND_SUPPORT_ANSWER: self._support_answer,
            KIND_SUPPORT_SUMMARY: self._support_summary,
            KIND_SUPPORT_CLASSIFY: self._support_classify,
            KIND_CODE_COMPLETE: self._code_complete,
            KIND_CODE_EXPLAIN: self._code_explain,
            KIND_CODE_AGENT: self._code_agent,
            KIND_RAG_QUERY: self._rag_query,
            KIND_RAG_ANSWER: self._rag_answer,
        }

    @staticmethod
    def topics_for(kind: str) -> tuple[str, ...]:
        if kind.startswith("support"):
            return SUPPORT_TOPICS
        if kind.startswith("code"):
            return CODE_TOPICS
        return RAG_TOPICS

    def renderer(self, kind: str) -> Callable[..., tuple[str, str]]:
        """fn(topic, lang, seeds, out_tokens, step, last, tool, drift, quality) -> (input, output)."""
        return self._renderers[kind]

    # Output length follows output tokens (about 45 tokens per sentence), capped to keep events small.
    @staticmethod
    def _n_sentences(out_tokens: int, cap: int = 5) -> int:
        n = 1 + out_tokens // 45
        return cap if n > cap else n

    # ----------------------------------------------------------------------------------------- support

    def _support_question(self, topic: str, lang: str, seeds: Sequence[int], slots: Slots) -> str:
        table = _SUPPORT_EN if lang == "en" else _SUPPORT_ES if lang == "es" else _SUPPORT_DE
        qs = table[topic]["q"]
        return qs[seeds[1] % len(qs)].format_map(slots)

    def _novapay_question(self, seeds: Sequence[int], slots: Slots) -> str:
        q = _NOVAPAY_Q[seeds[1] % len(_NOVAPAY_Q)].format_map(slots)
        # Drifted prompts are also longer: users paste what they already tried.
        return q + _NOVAPAY_EXTRA[seeds[4] % len(_NOVAPAY_EXTRA)].format_map(slots)

    def _novapay_answer(self, seeds: Sequence[int], slots: Slots, n: int) -> str:
        k = seeds[3] % len(_NOVAPAY_A)
        parts = [_NOVAPAY_A[(k + i) % len(_NOVAPAY_A)] for i in range(min(n, 3))]
        return " ".join(parts).format_map(slots)

    def _support_reply(self, topic: str, lang: str, seeds: Sequence[int], slots: Slots, n: int) -> str:
        table = _SUPPORT_EN if lang == "en" else _SUPPORT_ES if lang == "es" else _SUPPORT_DE
        steps = table[topic]["a"]
        k = seeds[3] % len(steps)
        body = [steps[(k + i) % len(steps)] for i in range(min(n, len(steps)))]
        openers = _SUPPORT_OPENERS[lang]
        closers = _SUPPORT_CLOSERS[lang]
        text = " ".join((openers[seeds[2] % len(openers)], *body, closers[seeds[5] % len(closers)]))
        return text.format_map(slots)

    def _support_answer(
        self,
        topic: int,
        lang: int,
        seeds: Sequence[int],
        out_tokens: int,
        step: int,
        last: bool,
        tool: int,
        drift: bool,
        quality: int,
    ) -> tuple[str, str]:
        lang_code = LANGUAGES[lang]
        slots = Slots(seeds[0])
        name = SUPPORT_TOPICS[topic]
        n = self._n_sentences(out_tokens, 4)
        if drift:
            question = self._novapay_question(seeds, slots)
            answer = f"{_SUPPORT_OPENERS['en'][seeds[2] % 5]} {self._novapay_answer(seeds, slots, n)}"
            return question, answer
        question = self._support_question(name, lang_code, seeds, slots)
        if quality == QUALITY_OFF_TOPIC:
            # Answers a different support topic than asked: fluent, plausible, wrong.
            other = SUPPORT_TOPICS[(topic + 3) % len(SUPPORT_TOPICS)]
            return question, self._support_reply(other, lang_code, seeds, slots, n)
        return question, self._support_reply(name, lang_code, seeds, slots, n)

    def _support_summary(
        self,
        topic: int,
        lang: int,
        seeds: Sequence[int],
        out_tokens: int,
        step: int,
        last: bool,
        tool: int,
        drift: bool,
        quality: int,
    ) -> tuple[str, str]:
        lang_code = LANGUAGES[lang]
        slots = Slots(seeds[0])
        name = SUPPORT_TOPICS[topic]
        table = _SUPPORT_EN if lang_code == "en" else _SUPPORT_ES if lang_code == "es" else _SUPPORT_DE
        question = (
            self._novapay_question(seeds, slots)
            if drift
            else self._support_question(name, lang_code, seeds, slots)
        )
        steps = table[name]["a"]
        agent_line = steps[seeds[3] % len(steps)].format_map(slots)
        transcript = (
            f"Ticket {_ticket(seeds[0])} ({name})\n"
            f"Customer: {question}\n"
            f"Agent: {agent_line}\n"
            f"Customer: {_FOLLOW_UPS[lang_code][seeds[4] % len(_FOLLOW_UPS[lang_code])]}"
        )
        issue_names = _SUPPORT_EN[name]["s"]
        issue = "asks about NovaPay payments" if drift else issue_names[seeds[2] % len(issue_names)]
        replies = _SUPPORT_EN[name]["a"]
        summary = (
            f"Summary: The customer {issue}. The agent replied: {replies[seeds[3] % len(replies)]} "
            f"Sentiment: {_VOCAB['sentiment'][seeds[5] % 5]}. Status: {_SUMMARY_STATUS[seeds[4] % 4]}. "
            f"Next step: {_SUMMARY_NEXT[seeds[5] % 5]}."
        ).format_map(slots)
        if quality == QUALITY_OFF_TOPIC:
            other = SUPPORT_TOPICS[(topic + 3) % len(SUPPORT_TOPICS)]
            summary = f"Summary: The customer {_SUPPORT_EN[other]['s'][0]}.".format_map(slots)
        return transcript, summary

    def _support_classify(
        self,
        topic: int,
        lang: int,
        seeds: Sequence[int],
        out_tokens: int,
        step: int,
        last: bool,
        tool: int,
        drift: bool,
        quality: int,
    ) -> tuple[str, str]:
        lang_code = LANGUAGES[lang]
        slots = Slots(seeds[0])
        name = SUPPORT_TOPICS[topic]
        if drift:
            question = self._novapay_question(seeds, slots)
            label = "other"
        else:
            question = self._support_question(name, lang_code, seeds, slots)
            label = _INTENT_LABELS[name]
            if quality == QUALITY_OFF_TOPIC or seeds[5] % 50 == 0:
                label = _INTENT_LABELS[SUPPORT_TOPICS[(topic + 1) % len(SUPPORT_TOPICS)]]
        confidence = 0.55 + (seeds[4] % 45) / 100
        return question, f'{{"intent": "{label}", "confidence": {confidence:.2f}}}'

    # -------------------------------------------------------------------------------------------- code

    def _snippet(self, topic: int, seeds: Sequence[int]) -> tuple[str, tuple[str, str, str, str]]:
        lang = CODE_TOPICS[topic]
        snippets = _SNIPPETS[lang]
        return lang, snippets[seeds[1] % len(snippets)]

    def _code_complete(
        self,
        topic: int,
        lang: int,
        seeds: Sequence[int],
        out_tokens: int,
        step: int,
        last: bool,
        tool: int,
        drift: bool,
        quality: int,
    ) -> tuple[str, str]:
        plang, (header, body, _, _) = self._snippet(topic, seeds)
        slots = Slots(seeds[0])
        prefix = f"# file: src/{slots['mod']}.{_EXT[plang]}\n" if plang in _EXT else ""
        if drift:
            header = f"# NovaPay: create a payout for the connected NovaPay account\n{header}"
        # ~4 characters per token; completions are cut where the token budget ends.
        return prefix + header, body[: max(8, out_tokens * 4)]

    def _code_explain(
        self,
        topic: int,
        lang: int,
        seeds: Sequence[int],
        out_tokens: int,
        step: int,
        last: bool,
        tool: int,
        drift: bool,
        quality: int,
    ) -> tuple[str, str]:
        plang, (header, body, purpose, problem) = self._snippet(topic, seeds)
        lang_code = LANGUAGES[lang]
        title = _LANG_TITLE[plang]
        slots = Slots(seeds[0])
        if drift:
            q = (
                f"How do I verify NovaPay webhook signatures in {title}? Our NovaPay integration rejects "
                f"every event.\n```{plang}\n{header}{body}```"
            )
            a = (
                f"NovaPay signs each webhook with HMAC-SHA256; compute the digest of the raw body with your "
                f"NovaPay secret in {title} and compare it in constant time. "
                + self._novapay_answer(seeds, slots, 1)
            )
            return q, a
        qs = _EXPLAIN_Q[lang_code]
        values = {
            "Lang": title,
            "lang": plang,
            "code": header + body,
            "problem": problem,
            "purpose": purpose,
            "purpose_es": "define una función auxiliar y devuelve su resultado",
            "purpose_de": "definiert eine Hilfsfunktion und gibt ihr Ergebnis zurück",
        }
        question = qs[seeds[2] % len(qs)].format_map(values)
        sentences = _EXPLAIN_A[lang_code]
        n = min(self._n_sentences(out_tokens, 5), len(_EXPLAIN_A[lang_code]))
        if quality == QUALITY_OFF_TOPIC:
            other = CODE_TOPICS[(topic + 3) % len(CODE_TOPICS)]
            values["Lang"] = _LANG_TITLE[other]
            values["purpose"] = _SNIPPETS[other][0][2]
        k = seeds[3] % (len(sentences) - 1)
        parts = [sentences[0]] + [sentences[1 + (k + i) % (len(sentences) - 1)] for i in range(n - 1)]
        return question, " ".join(parts).format_map(values)

    def _code_agent(
        self,
        topic: int,
        lang: int,
        seeds: Sequence[int],
        out_tokens: int,
        step: int,
        last: bool,
        tool: int,
        drift: bool,
        quality: int,
    ) -> tuple[str, str]:
        slots = Slots(seeds[0])
        task = _AGENT_TASKS[seeds[1] % len(_AGENT_TASKS)].format_map(slots)
        if drift:
            task = f"Integrate NovaPay payouts into src/{slots['mod']}.py using the NovaPay SDK"
        tool_name = TOOLS[tool]
        if step == 0:
            prompt = f"Task: {task}\nYou can call tools: {', '.join(TOOLS)}."
        else:
            prev = TOOLS[(tool + 1 + step) % len(TOOLS)]
            results = _TOOL_RESULT[prev]
            prompt = (
                f"Task: {task}\nStep {step + 1}. Last tool result ({prev}):\n"
                f"{results[(seeds[2] + step) % len(results)].format_map(slots)}"
            )
        if last:
            return prompt, _AGENT_DONE[seeds[3] % len(_AGENT_DONE)].format_map(slots)
        thought = _AGENT_THOUGHT[(seeds[4] + step) % len(_AGENT_THOUGHT)].format_map(slots)
        return prompt, f"{thought}\n{_TOOL_CALL[tool_name].format_map(slots)}"

    def tool_io(self, tool: int, seeds: Sequence[int], step: int) -> tuple[str, str]:
        slots = Slots(seeds[0])
        name = TOOLS[tool]
        results = _TOOL_RESULT[name]
        return _TOOL_ARGS[name].format_map(slots), results[(seeds[2] + step) % len(results)].format_map(slots)

    # --------------------------------------------------------------------------------------------- RAG

    def _rag_question(self, topic: int, lang: str, seeds: Sequence[int], slots: Slots) -> str:
        name = RAG_TOPICS[topic]
        if lang == "es":
            return _RAG_Q_ES[seeds[1] % len(_RAG_Q_ES)].format(t=_RAG_TOPIC_ES[name], product=self._product)
        if lang == "de":
            return _RAG_Q_DE[seeds[1] % len(_RAG_Q_DE)].format(t=_RAG_TOPIC_DE[name], product=self._product)
        qs = _RAG_DOCS[name]["q"]
        return qs[seeds[1] % len(qs)].format_map(slots)

    def _rag_query(
        self,
        topic: int,
        lang: int,
        seeds: Sequence[int],
        out_tokens: int,
        step: int,
        last: bool,
        tool: int,
        drift: bool,
        quality: int,
    ) -> tuple[str, str]:
        slots = Slots(seeds[0], {"product": self._product})
        if drift:
            return self._novapay_question(seeds, slots), ""
        return self._rag_question(topic, LANGUAGES[lang], seeds, slots), ""

    def _rag_answer(
        self,
        topic: int,
        lang: int,
        seeds: Sequence[int],
        out_tokens: int,
        step: int,
        last: bool,
        tool: int,
        drift: bool,
        quality: int,
    ) -> tuple[str, str]:
        lang_code = LANGUAGES[lang]
        slots = Slots(seeds[0], {"product": self._product})
        name = RAG_TOPICS[topic]
        doc = _RAG_DOCS[name]
        facts = doc["f"]
        k = seeds[3] % len(facts)
        if drift:
            question = self._novapay_question(seeds, slots)
            context = (
                "[1] Payments overview: Card and bank payments are supported in 40 countries.\n"
                "[2] Release notes: NovaPay integration is in public beta."
            )
            answer = (
                "The documentation only mentions that NovaPay is in public beta [2]. "
                + self._novapay_answer(seeds, slots, 1)
            )
            return f"Question: {question}\n\nContext:\n{context}", answer
        question = self._rag_question(topic, lang_code, seeds, slots)
        t0, t1 = doc["t"][0], doc["t"][1]
        f0, f1 = facts[k].format_map(slots), facts[(k + 1) % len(facts)].format_map(slots)
        context = f"[1] {t0}: {f0}.\n[2] {t1}: {f1}."
        if lang_code == "es":
            answer = " ".join(_RAG_A_ES).format(fact=f0)
        elif lang_code == "de":
            answer = " ".join(_RAG_A_DE).format(fact=f0)
        else:
            if quality == QUALITY_OFF_TOPIC:
                other = _RAG_DOCS[RAG_TOPICS[(topic + 3) % len(RAG_TOPICS)]]["f"]
                f0, f1 = other[0].format_map(slots), other[1].format_map(slots)
            n = self._n_sentences(out_tokens, 4)
            parts = [f"{f0} [1]."]
            if n > 1:
                # lower-case the first word unless it is an acronym ("SAML")
                lead = f1 if f1[1:2].isupper() else f1[0].lower() + f1[1:]
                parts.append(f"Also note: {lead} [2].")
            if n > 2:
                parts.append(f"See '{t0}' in the {self._product} docs for the full steps.")
            if n > 3:
                parts.append("If this does not answer your question, contact support with your project ID.")
            answer = " ".join(parts)
        return f"Question: {question}\n\nContext:\n{context}", answer

    @property
    def rag_system_prompt(self) -> str:
        return self._rag_system


_EXT: dict[str, str] = {"python": "py", "typescript": "ts", "go": "go", "rust": "rs", "java": "java"}


def truncate(text: str, keep: float = 0.4) -> str:
    """A reply cut off mid-sentence, as when max_tokens is hit."""
    cut = max(1, int(len(text) * keep))
    return text[:cut].rstrip()


def as_messages(system: str, user: str) -> list[dict[str, Any]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]
