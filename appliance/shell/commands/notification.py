"""
The C{notification} mode (the missed-call service of seed 003): service
numbers, answers to INVITEs, ISUP causes and timer, templates, the
blacklist, the pending expiry and the way the SMS leave; C{show
notification pending} and C{show notification statistics}.
"""
from __future__ import annotations

import re

from appliance.notify import texts
from appliance.notify.model import KEY, RESPONSES, NotifyRoot
from appliance.shell.commands.modes import CONFIG, POLICY, command
from appliance.shell.grammar import ANY, NO_STR, Mode
from appliance.shell.types import ArgumentError


def notify_root(app_root, create: bool = False) -> NotifyRoot | None:
    """@return: C{root["notify"]} of the connection of C{app_root}."""
    jar = getattr(app_root, "_p_jar", None)
    if jar is None:
        return None
    raw = jar.root()
    obj = raw.get(KEY)
    if obj is None and create:
        obj = raw[KEY] = NotifyRoot()
    return obj


NOTIFICATION = Mode("config-notification", CONFIG, "notification",
                    lambda root, parent, key: notify_root(root))


def _configured(root, parent):
    obj = notify_root(root)
    return ["notification"] if obj is not None and obj.configured else []


@command(CONFIG, "notification",
         help=("The missed-call service (Who Called, Notify Me)",),
         enters=NOTIFICATION, children=_configured)
def notification(ctx):
    obj = notify_root(ctx.root, create=True)
    obj.configured = True
    ctx.enter("notification")


@command(NOTIFICATION, "service-number NUMBER",
         help=("A number diverted calls reach the service on", "Number"),
         render=lambda o: [(n,) for n in o.service_numbers])
def service_number(ctx, number):
    if number not in ctx.obj.service_numbers:
        ctx.obj.service_numbers = tuple(sorted(ctx.obj.service_numbers
                                               + (number,)))


@command(NOTIFICATION, "no service-number NUMBER",
         help=(NO_STR, "A service number", "Number"))
def no_service_number(ctx, number):
    if number not in ctx.obj.service_numbers:
        raise ArgumentError(f"{number} is not a service number")
    ctx.obj.service_numbers = tuple(n for n in ctx.obj.service_numbers
                                    if n != number)


def _render_responses(o):
    return [(r, s) for r, s in sorted(o.responses) if RESPONSES[r] != s]


@command(NOTIFICATION, "response (busy|unavailable|no-answer|other) <300-699>",
         help=("The final response to a diverted INVITE",
               "Diversion reason", "SIP status"),
         render=_render_responses)
def response(ctx, reason, status):
    rest = tuple(p for p in ctx.obj.responses if p[0] != reason)
    ctx.obj.responses = tuple(sorted(rest + ((reason, status),)))


@command(NOTIFICATION, "no response (busy|unavailable|no-answer|other)",
         help=(NO_STR, "The final response", "Diversion reason"))
def no_response(ctx, reason):
    ctx.obj.responses = tuple(p for p in ctx.obj.responses
                              if p[0] != reason)


def _unset(obj, attr: str) -> None:
    if attr in obj.__dict__:
        delattr(obj, attr)


def _plain(attr: str, spec: str, help: tuple, convert=None) -> None:
    def render(o):
        value = getattr(o, attr)
        return [] if value == getattr(NotifyRoot, attr) else [(value,)]

    @command(NOTIFICATION, spec, help=help, render=render)
    def set_value(ctx, value):
        setattr(ctx.obj, attr, convert(value) if convert else value)

    words = spec.split()[:-1]

    @command(NOTIFICATION, "no " + " ".join(words),
             help=(NO_STR,) + help[:-1])
    def unset_value(ctx):
        _unset(ctx.obj, attr)


_plain("release_busy", "isup release-cause busy <1-127>",
       ("ISUP answers", "The cause of our REL", "For busy (17 user busy)",
        "Q.850 cause"))
_plain("release_other", "isup release-cause other <1-127>",
       ("ISUP answers", "The cause of our REL",
        "For no reply and other (the congestion cause, 42 by default)",
        "Q.850 cause"))
_plain("seized_timer", "isup channel-seized-timer <0-3600>",
       ("ISUP answers", "Seconds from our ACM to our REL", "Seconds"))
_plain("pending_expiry", "pending-expiry <0-31536000>",
       ("Seconds a caller waits for an unreachable party (0: forever)",
        "Seconds"))
_plain("delivery", "delivery (smpp|map)",
       ("How the SMS leave",
        "smpp: through the core and a service policy; map: MT-ForwardSM"))
_plain("language", "language WORD",
       ("The language of the templates used", "Language"))
_plain("opt_out_keyword", "opt-out-keyword WORD",
       ("The word that, sent to a service number, opts out", "Keyword"))


@command(NOTIFICATION, "include (time|reason|count)",
         help=("What the default Who Called text includes",
               "The item"),
         render=lambda o: [(i,) for i in texts.INCLUDES if i in o.include])
def include(ctx, item):
    ctx.obj.include = frozenset(ctx.obj.include | {item})


@command(NOTIFICATION, "no include (time|reason|count)",
         help=(NO_STR, "What the default text includes", "The item"))
def no_include(ctx, item):
    ctx.obj.include = frozenset(ctx.obj.include - {item})


_LANGUAGE = re.compile(r"[a-z]{2,3}(-[a-zA-Z]{2})?|default")


def _split_language(line: str) -> tuple[str, str]:
    first, _, rest = line.partition(" ")
    if rest.strip() and _LANGUAGE.fullmatch(first):
        return ("" if first == "default" else first), rest.strip()
    return "", line


def _render_templates(kind):
    def render(o):
        out = []
        for (k, language), text in sorted(o.templates):
            if k != kind:
                continue
            if language:
                out.append((f"{language} {text}",))
            elif _split_language(text)[0] or text.startswith("default "):
                out.append((f"default {text}",))
            else:
                out.append((text,))
        return out
    return render


for _kind in texts.KINDS:
    def _declare(kind):
        @command(NOTIFICATION, f"template {kind} LINE",
                 help=("The text of a notification",
                       f"The {kind.replace('-', ' ')} SMS",
                       "[LANGUAGE] TEXT with {caller} {called} {time} "
                       "{count} {reason}"),
                 render=_render_templates(kind))
        def template(ctx, line):
            language, text = _split_language(line)
            try:
                texts.check(text)
            except texts.TemplateError as e:
                raise ArgumentError(str(e)) from None
            rest = tuple(p for p in ctx.obj.templates
                         if p[0] != (kind, language))
            ctx.obj.templates = tuple(sorted(rest + (((kind, language),
                                                      text),)))

        @command(NOTIFICATION, f"no template {kind} LINE",
                 help=(NO_STR, "The text of a notification",
                       f"The {kind.replace('-', ' ')} SMS",
                       "LANGUAGE or default"))
        def no_template(ctx, line):
            language = "" if line.strip() == "default" else line.strip()
            ctx.obj.templates = tuple(p for p in ctx.obj.templates
                                      if p[0] != (kind, language))
    _declare(_kind)


@command(NOTIFICATION, "blacklist NUMBER",
         help=("A subscriber who receives no notification SMS", "Number"),
         render=lambda o: [(n,) for n in o.blacklist])
def blacklist(ctx, number):
    ctx.obj.blacklist.add(number)


@command(NOTIFICATION, "no blacklist NUMBER",
         help=(NO_STR, "A blacklisted subscriber", "Number"))
def no_blacklist(ctx, number):
    if number not in ctx.obj.blacklist:
        raise ArgumentError(f"{number} is not on the blacklist")
    ctx.obj.blacklist.remove(number)


@command(ANY, "show notification pending",
         help=("Show running system information", "The missed-call service",
               "Who waits for whom since when"), action="show")
def show_pending(ctx):
    from appliance.shell.render import table
    svc = ctx.live.source("notification")
    if svc is None:
        return "the missed-call service does not run on this node\n"
    rows = svc.pending_rows()
    if not rows:
        return "nobody is waiting\n"
    return table(("Called (B)", "Caller (A)", "First call", "Last call",
                  "Calls", "Reason"), rows) + "\n"


@command(ANY, "show notification statistics",
         help=("Show running system information", "The missed-call service",
               "Triggers, SMS, alerts, HLR and MSC errors"), action="show")
def show_statistics(ctx):
    from appliance.shell.render import table
    svc = ctx.live.source("notification")
    if svc is None:
        return "the missed-call service does not run on this node\n"
    return table(("Counter", "Count"),
                 sorted(svc.statistics().items())) + "\n"


@command(POLICY, "transport notification",
         help=("How matching messages are delivered",
               "To the missed-call service (the opt-out keyword)"),
         render=lambda p: [()] if p.transport == "notification" else [])
def transport_notification(ctx):
    ctx.obj.transport = "notification"
    ctx.root.set_policy_connections(ctx.obj.name, ())
