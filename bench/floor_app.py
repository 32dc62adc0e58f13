"""The cheapest FastAPI endpoint there is, served like the real API (uvicorn, uvloop,
httptools, no access log): what one process of this framework does on this machine, the
ceiling any real route sits under."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/floor/{run_id}")
async def floor(run_id: str) -> dict:
    return {"run_id": run_id, "status": "queued"}
