"""The long-running services: the web app and the scheduler daemon."""

from __future__ import annotations

import click

from reminders.cli.common import State, friendly, pass_state


@click.command()
@pass_state
@friendly
def serve(state: State) -> None:
    """运行网页服务 Serve the units' report form and the office dashboard ([web] bind, port; needs the web secret).

    Example: REMINDERS_WEB_SECRET=… reminders serve
    """
    import uvicorn

    from reminders.web import create_app

    config = state.config
    app = create_app(config, state.engine())
    click.echo(f"网页服务 serving on http://{config.web.bind}:{config.web.port} (links: {config.web.base_url})")
    # No access log: the report links carry their token in the path, and a token is a credential.
    uvicorn.run(app, host=config.web.bind, port=config.web.port, proxy_headers=True, server_header=False,
                access_log=False)


@click.command()
@pass_state
@friendly
def run(state: State) -> None:
    """运行调度守护进程 Run the scheduler daemon (cron jobs from [schedule]; stops on SIGTERM/SIGINT).

    Example: reminders --config /etc/reminders/reminders.toml run
    """
    from reminders.daemon import run_daemon

    run_daemon(state.config, state.engine())
