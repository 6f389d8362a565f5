"""The domain's pydantic schemas and rules, one module per concept, all importable from here.

Only pydantic here: no database, no HTTP.
"""

from ump_llm_connections.domain.connections import *  # noqa: F403
from ump_llm_connections.domain.endpoints import *  # noqa: F403
from ump_llm_connections.domain.health import *  # noqa: F403
from ump_llm_connections.domain.input import *  # noqa: F403
from ump_llm_connections.domain.pools import *  # noqa: F403
from ump_llm_connections.domain.usage import *  # noqa: F403
from ump_llm_connections.domain.webhooks import *  # noqa: F403
