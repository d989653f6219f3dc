"""/apitoken: the user's REST API tokens — list, create (shown once), revoke."""

from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.ext import CommandHandler, ContextTypes

from bot.auth import BotUser, get_app, handler, reply
from core.errors import UserError

USAGE = (
    "Usage: /apitoken — your tokens\n"
    "/apitoken new read|trade [label] — a new token (read: look only; trade: also follow, stop, change settings)\n"
    "/apitoken revoke <id> — revoke one"
)


@handler()
async def apitoken(update: Update, context: ContextTypes.DEFAULT_TYPE, user: BotUser) -> None:
    args = list(context.args or [])
    tokens = get_app(context).api_tokens
    if not args:
        views = await tokens.of_user(user.id)
        lines = [f"#{v.id} {v.label} — {v.scope.value} — {v.shown}" for v in views] or ["No API tokens yet."]
        await reply(update, "\n".join(["Your API tokens:", *lines, "", USAGE]))
        return
    verb = args[0].lower()
    if verb == "new" and 2 <= len(args):
        token, view = await tokens.create(user.id, args[1], " ".join(args[2:]))
        await reply(
            update,
            f"API token #{view.id} ({view.scope.value}, {view.label}):\n{token}\n\n"
            "It is shown only this once; copy it now, then delete this message. Send it as "
            "'Authorization: Bearer <token>'. Revoke it with /apitoken revoke " + str(view.id),
        )
        return
    if verb == "revoke" and len(args) == 2 and args[1].lstrip("#").isdigit():
        token_id = int(args[1].lstrip("#"))
        await tokens.revoke(user.id, token_id)
        await reply(update, f"API token #{token_id} revoked: it no longer opens the API.")
        return
    raise UserError(USAGE)


def apitoken_handlers() -> list[Any]:
    return [CommandHandler("apitoken", apitoken)]
