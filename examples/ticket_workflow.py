"""The guide's automation workflow, runnable: analyse a support ticket with an LLM connection and
store the model's suggestion on the ticket.

    python examples/ticket_workflow.py T-1001 --tickets tickets.json --connection "Claude Sonnet"

The tickets live in a JSON file (``{"T-1001": {"subject": ..., "body": ...}}``) standing in for
a helpdesk's API. The connection must be active and have "Use in Automation" on; the call goes
through the server's gateway (``UMP_AI_API_URL``, default http://localhost:8002/api, and
``UMP_API_TOKEN`` once the server has tokens) and counts as an ``automation`` call in its usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from ump_llm_connections import UMPError, get_connection

TICKETS = Path("tickets.json")


async def get_ticket(ticket_id: str) -> dict[str, Any]:
    tickets = json.loads(await asyncio.to_thread(TICKETS.read_text))
    ticket: dict[str, Any] = tickets[ticket_id]
    return ticket


async def update_ticket(ticket_id: str, **fields: Any) -> None:
    tickets = json.loads(await asyncio.to_thread(TICKETS.read_text))
    tickets[ticket_id].update(fields)
    await asyncio.to_thread(TICKETS.write_text, json.dumps(tickets, indent=2) + "\n")


async def process_ticket(ticket_id: str, connection_name: str = "Claude Sonnet") -> str:
    # Get LLM connection
    llm = await get_connection(connection_name, use_in_automation=True)

    # Analyze ticket
    ticket_data = await get_ticket(ticket_id)

    response = await llm.generate(
        prompt=f"Analyze this support ticket and suggest a solution:\n{ticket_data}",
        max_tokens=1000,
    )

    # Update ticket with AI suggestion
    await update_ticket(ticket_id, ai_suggestion=response.text)
    return response.text


def main() -> int:
    global TICKETS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ticket_id", help="the ticket to analyse, a key of the tickets file")
    parser.add_argument("--tickets", type=Path, default=TICKETS, help="the tickets JSON file")
    parser.add_argument("--connection", default="Claude Sonnet", help="connection or pool name")
    args = parser.parse_args()
    TICKETS = args.tickets
    try:
        suggestion = asyncio.run(process_ticket(args.ticket_id, args.connection))
    except UMPError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except (KeyError, OSError, ValueError) as exc:
        print(
            f"error: cannot read ticket {args.ticket_id} from {TICKETS}: {exc!r}", file=sys.stderr
        )
        return 1
    print(suggestion)
    return 0


if __name__ == "__main__":
    sys.exit(main())
