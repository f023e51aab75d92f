// Hash routing: deep links (#/tasks/mnist) work without any server-side fallback.
import { createRouter, createWebHashHistory } from "vue-router";
import TasksPage from "./pages/TasksPage.vue";

export const router = createRouter({
  history: createWebHashHistory(),
  routes: [
    { path: "/", name: "tasks", component: TasksPage, meta: { title: "Tasks" } },
    {
      path: "/tasks/:id/:step?",
      name: "task",
      component: () => import("./pages/TaskPage.vue"),
      props: true,
      meta: { title: "Task" },
    },
    {
      path: "/library",
      name: "library",
      component: () => import("./pages/LibraryPage.vue"),
      meta: { title: "Model library" },
    },
    {
      path: "/create",
      name: "create",
      component: () => import("./pages/CreateTaskPage.vue"),
      meta: { title: "Create a task" },
    },
    {
      path: "/:rest(.*)*",
      name: "not-found",
      component: () => import("./pages/NotFoundPage.vue"),
      meta: { title: "Page not found" },
    },
  ],
  scrollBehavior: () => ({ top: 0 }),
});

router.afterEach((to) => {
  const title = typeof to.meta.title === "string" ? to.meta.title : "";
  document.title = title ? `${title} · disco` : "disco";
});
