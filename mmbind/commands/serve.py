"""`mmbind serve`: the web explorer of a store. Starlette, uvicorn, torch and umap load inside the
command, so `mmbind --help` stays fast."""
from __future__ import annotations

from pathlib import Path

import click

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def allowed_hosts(host: str) -> list[str]:
    """The Host header names the server answers to: loopback names by default; any name when
    told to listen on every interface."""
    if host in ("0.0.0.0", "::"):
        return ["*"]
    return sorted({host, "127.0.0.1", "localhost"})


def register(cli: click.Group) -> None:
    @cli.command()
    @click.argument("store", type=click.Path(exists=True, dir_okay=False))
    @click.option("--binder", "binder_dir", required=True, type=click.Path(exists=True, file_okay=False),
                  help="The binder that made the store (a run's model folder): it embeds queries and dropped files.")
    @click.option("--host", default="127.0.0.1", show_default=True,
                  help="Interface to listen on; anything but loopback makes the store readable by others.")
    @click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
    @click.option("--allow-embed", is_flag=True,
                  help="Let the page write dropped files into the store (collection uploads-<modality>).")
    @click.option("--recipe", type=click.Path(dir_okay=False),
                  help="Recipe whose dataset holds the items' content (default: recipe.toml beside the binder folder).")
    @click.option("--map", "map_method", type=click.Choice(["auto", "umap", "pca"]), default="auto", show_default=True,
                  help="How a new map is computed (auto: UMAP up to 30,000 points, else PCA).")
    @click.option("--remap", is_flag=True, help="Compute the map again even if the store holds one.")
    @click.option("--max-upload", default="20MiB", show_default=True, help="Largest file the page may drop.")
    def serve(store: str, binder_dir: str, host: str, port: int, allow_embed: bool, recipe: str | None,
              map_method: str, remap: bool, max_upload: str) -> None:
        """Explore STORE in the browser: every collection on one map, queries in the arithmetic
        language (or plain text), files dropped on the page as queries, results as a gallery."""
        from mmbind.commands.embeddings import load_binder, parse_size
        from mmbind.progress import configure

        try:
            limit = parse_size(max_upload)
        except click.BadParameter as error:
            raise click.BadParameter(error.message, param_hint="--max-upload") from None
        configure()
        import uvicorn

        from mmbind.serve.app import create_app
        from mmbind.serve.explorer import Explorer, QueryError
        from mmbind.serve.sources import Sources
        from mmbind.store.store import StoreError

        recipe_path = Path(recipe) if recipe else Path(binder_dir).resolve().parent / "recipe.toml"
        if recipe and not recipe_path.is_file():
            raise click.BadParameter(f"{recipe}: no such recipe file", param_hint="--recipe")
        try:
            explorer = Explorer(store, load_binder(binder_dir), sources=Sources.from_recipe(recipe_path),
                                allow_embed=allow_embed, upload_limit=limit, map_method=map_method, remap=remap)
            app = create_app(explorer, hosts=allowed_hosts(host))
        except (StoreError, QueryError, FileNotFoundError, ValueError) as error:
            raise click.ClickException(str(error)) from None
        explorer.warm_up()
        if host not in LOOPBACK:
            click.echo(f"warning: listening on {host}: anyone who can reach it can read the store", err=True)
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"mmbind explorer: http://{shown}:{port}/  ({explorer.total} points; Ctrl+C stops it)", err=True)
        uvicorn.run(app, host=host, port=port, log_level="warning")
