from ump_llm_connections.cli import app

app(prog_name="ump-llm")
