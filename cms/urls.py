from django.urls import path

from cms import views
from cms.feeds import NewsAtomFeed, NewsFeed

app_name = "cms"

urlpatterns = [
    path("search/", views.search, name="search"),
    path("feeds/news/rss/", NewsFeed(), name="news_rss"),
    path("feeds/news/atom/", NewsAtomFeed(), name="news_atom"),
]
