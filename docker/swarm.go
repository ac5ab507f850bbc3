package docker

import "github.com/docker/docker/api/types/container"

// Labels the engine puts on the containers of Swarm tasks.
const (
	LabelSwarmService = "com.docker.swarm.service.name"
	LabelSwarmTask    = "com.docker.swarm.task.id"
	LabelSwarmNode    = "com.docker.swarm.node.id"
)

// swarmIngress is the network of Swarm's routing mesh: a task's address on
// it reaches nothing outside the mesh, so it is never registered.
const swarmIngress = "ingress"

// swarmTask is the Swarm service a container is a task of, "" for a
// container that is not a task. A task's ports published through the
// routing mesh are not bindings of its container: they are registered at
// the task's address on its overlay network and the port the container
// exposes; ports published with mode=host are bindings as for any
// container.
func swarmTask(c container.InspectResponse) string {
	if c.Config == nil || c.Config.Labels[LabelSwarmTask] == "" {
		return ""
	}
	return c.Config.Labels[LabelSwarmService]
}
