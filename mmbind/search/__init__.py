"""Search: exact top-k (``topk``), streamed over store collections (``streamed``), query
resolution and the store's search (``query``), the arithmetic language (``expression``), and
optional FAISS indexes (``faiss_index``)."""
from mmbind.search.expression import evaluate_expression
from mmbind.search.query import QueryResolver, search_entries
from mmbind.search.streamed import search_collection
from mmbind.search.topk import TopK, knn_recall, semantic_search, topk, topk_blocks

__all__ = [
    "topk", "TopK", "topk_blocks", "semantic_search", "knn_recall", "search_collection", "QueryResolver",
    "search_entries", "evaluate_expression",
]
